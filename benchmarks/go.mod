module github.com/quiverml/quiver/benchmarks

go 1.26.0

replace github.com/quiverml/quiver => ../
