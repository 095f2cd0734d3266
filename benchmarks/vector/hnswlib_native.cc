// Native hnswlib peer for Quiver's vector benchmarks. It reads the data set
// that BenchmarkSearch writes with QUIVER_BENCH_FVECS=<dir> (base.fvecs,
// query.fvecs, truth.ivecs; for the cosine set base-cos.fvecs,
// query-cos.fvecs, truth-cos.ivecs), builds an hnswlib index with M=16,
// efConstruction=200 on every core, and prints recall@10 and one-thread
// queries per second per ef, one searchKnn call per query, as the Go
// benchmark does. cpu_qps divides by the CPU time of the searching thread.
//
// Built by run.sh with: g++ -O3 -march=native -std=c++17 -pthread
// (Debian's libhnswlib-dev headers: apt-get install libhnswlib-dev).
//
// Usage: hnswlib_native <dir> [l2|cosine]   (HNSW_THREADS=n sets the build threads,
// HNSW_SEED the level generator seed)
#include <hnswlib/hnswlib.h>

#include <time.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

// readVecs reads a TEXMEX .fvecs/.ivecs file: per row an int32 dimension
// then dim 4-byte values.
template <typename T>
std::vector<T> readVecs(const std::string& path, int* dim, size_t* rows) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "cannot open %s\n", path.c_str());
    std::exit(1);
  }
  std::vector<T> out;
  *rows = 0;
  int32_t d;
  while (f.read(reinterpret_cast<char*>(&d), 4)) {
    *dim = d;
    size_t off = out.size();
    out.resize(off + d);
    f.read(reinterpret_cast<char*>(out.data() + off), sizeof(T) * d);
    ++*rows;
  }
  return out;
}

double now(clockid_t c) {
  timespec ts;
  clock_gettime(c, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

long rssBytes() {
  std::ifstream f("/proc/self/statm");
  long size = 0, rss = 0;
  f >> size >> rss;
  return rss * 4096;
}

void normalize(float* v, int dim) {
  double s = 0;
  for (int i = 0; i < dim; i++) s += double(v[i]) * v[i];
  float inv = float(1 / std::sqrt(s));
  for (int i = 0; i < dim; i++) v[i] *= inv;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <dir> [l2|cosine]\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  std::string metric = argc > 2 ? argv[2] : "l2";
  std::string suffix = metric == "cosine" ? "-cos" : "";
  int dim = 0, qdim = 0, k = 0;
  size_t n = 0, nq = 0, nt = 0;
  std::vector<float> base = readVecs<float>(dir + "/base" + suffix + ".fvecs", &dim, &n);
  std::vector<float> queries = readVecs<float>(dir + "/query" + suffix + ".fvecs", &qdim, &nq);
  std::vector<int32_t> truth = readVecs<int32_t>(dir + "/truth" + suffix + ".ivecs", &k, &nt);
  if (qdim != dim || nt != nq || k < 10) {
    std::fprintf(stderr, "inconsistent data set\n");
    return 1;
  }
  hnswlib::SpaceInterface<float>* space;
  if (metric == "cosine") {
    // hnswlib's cosine space is inner product on normalised vectors.
    for (size_t i = 0; i < n; i++) normalize(&base[i * dim], dim);
    for (size_t i = 0; i < nq; i++) normalize(&queries[i * dim], dim);
    space = new hnswlib::InnerProductSpace(dim);
  } else {
    space = new hnswlib::L2Space(dim);
  }
  long rss0 = rssBytes();
  size_t seed = 42;
  if (const char* s = std::getenv("HNSW_SEED")) seed = std::strtoul(s, nullptr, 10);
  auto* idx = new hnswlib::HierarchicalNSW<float>(space, n, 16, 200, seed);
  double t0 = now(CLOCK_MONOTONIC);
  // Insert on every core, as hnswlib's Python add_items does.
  unsigned workers = std::max(1u, std::thread::hardware_concurrency());
  if (const char* w = std::getenv("HNSW_THREADS")) workers = std::max(1, std::atoi(w));
  std::atomic<size_t> next{0};
  idx->addPoint(&base[0], 0);
  next = 1;
  std::vector<std::thread> ts;
  for (unsigned w = 0; w < workers; w++) {
    ts.emplace_back([&] {
      for (size_t i; (i = next.fetch_add(1)) < n;) idx->addPoint(&base[i * dim], i);
    });
  }
  for (auto& t : ts) t.join();
  double build = now(CLOCK_MONOTONIC) - t0;
  long bytes = rssBytes() - rss0;
  std::printf("hnswlib-native %s %zux%d build_s(%u threads)=%.1f rss_bytes/vec=%.0f\n", metric.c_str(), n, dim,
              workers, build, double(bytes) / n);
  std::printf("ef\trecall@10\tqps\tcpu_qps\n");
  const int efs[] = {16, 24, 32, 40, 48, 64, 128, 256};
  for (int ef : efs) {
    idx->setEf(ef);
    size_t hit = 0;
    for (size_t i = 0; i < nq; i++) {
      auto res = idx->searchKnn(&queries[i * dim], 10);
      std::set<int32_t> want(&truth[i * k], &truth[i * k] + 10);
      while (!res.empty()) {
        hit += want.count(int32_t(res.top().second));
        res.pop();
      }
    }
    double recall = double(hit) / (10.0 * nq);
    int reps = 10;
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
    size_t sink = 0;
    for (int r = 0; r < reps; r++)
      for (size_t i = 0; i < nq; i++) sink += idx->searchKnn(&queries[i * dim], 10).size();
    double w1 = now(CLOCK_MONOTONIC), c1 = now(CLOCK_THREAD_CPUTIME_ID);
    double total = double(reps) * nq;
    if (sink == 0) std::printf("no results\n");
    std::printf("%d\t%.4f\t%.0f\t%.0f\n", ef, recall, total / (w1 - w0), total / (c1 - c0));
  }
  delete idx;
  delete space;
  return 0;
}
