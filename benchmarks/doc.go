// Package benchmarks holds side-by-side benchmarks of Quiver against peers
// (otter, ristretto, Redis, coder/hnsw). It is its own module so that a
// service importing Quiver does not inherit the peers as dependencies.
package benchmarks
