// prefopt/train/reference_cache.hpp — reference log-probs computed once, cached on disk.
//
// reference::precomputed reads them from the batch; this computes them for a whole tokenized
// dataset in one pass before training (TRL's precompute_ref_log_probs) and caches them in
// `<cache_dir>/ref-<key>.jsonl`, where the key hashes every file the model was loaded from (config,
// weights or index and all its shards), the adapter's, the tokenized data and the settings that change log-probs (prefix layout, LD-DPO α).
// The next run with the same key reads the file instead of recomputing. A cache file that does not
// match the dataset (count, line numbers) is an error naming it, never silently reused.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/core/json.hpp"
#include "prefopt/data/collate.hpp"
#include "prefopt/io/atomic_file.hpp"
#include "prefopt/io/safetensors_index.hpp"
#include "prefopt/comm/none.hpp"
#include "prefopt/models/concepts.hpp"

namespace prefopt::train {

// 64-bit FNV-1a, streaming.
struct fnv1a {
  std::uint64_t h = 0xcbf29ce484222325ull;
  void add(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  }
  void add(std::string_view s) { add(s.data(), s.size()); }
  template <class T> void add_values(const std::vector<T>& v) {
    const std::uint64_t n = v.size();
    add(&n, sizeof n);
    if (!v.empty()) add(v.data(), v.size() * sizeof(T));
  }
  void add_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw io_error(p.string(), "cannot open for hashing");
    std::vector<char> buf(1 << 20);
    while (in) {
      in.read(buf.data(), std::streamsize(buf.size()));
      add(buf.data(), std::size_t(in.gcount()));
    }
  }
  std::string hex() const {
    std::ostringstream o;
    o << std::hex << h;
    return o.str();
  }
};

// The files a model is loaded from, as models::checkpoint_reader picks them: config.json and
// model.safetensors, or config.json, model.safetensors.index.json and every shard it names.
inline std::vector<std::filesystem::path> model_weight_files(const std::filesystem::path& model_dir) {
  std::vector<std::filesystem::path> files{model_dir / "config.json"};
  if (std::filesystem::exists(model_dir / "model.safetensors")) {
    files.push_back(model_dir / "model.safetensors");
  } else if (std::filesystem::exists(model_dir / "model.safetensors.index.json")) {
    const io::safetensors_index index(model_dir / "model.safetensors.index.json");
    files.push_back(index.path());
    for (const auto& shard : index.shard_names()) files.push_back(model_dir / shard);
  } else {
    throw io_error(model_dir.string(), "holds neither model.safetensors nor model.safetensors.index.json");
  }
  return files;
}

// The hash of every file the model (and the adapter, if any) is loaded from, each with its name:
// changing any weight file in place, a single shard included, changes the key.
inline std::string model_fingerprint(const std::filesystem::path& model_dir, const std::string& adapter_dir = "") {
  std::vector<std::filesystem::path> files = model_weight_files(model_dir);
  if (!adapter_dir.empty())
    for (const char* name : {"adapter_config.json", "adapter_model.safetensors"}) files.push_back(std::filesystem::path(adapter_dir) / name);
  fnv1a f;
  for (const auto& file : files) {
    f.add(file.filename().string());
    f.add("\0", 1);
    f.add_file(file);
  }
  return f.hex();
}

// Computes (or reads from the cache) the reference log-probs of every pair of `data`.
// `forward` runs the reference model on a batch (keep_activations off): it receives the batch and
// fills sequence_logps (chosen first, then rejected). With a communicator of several ranks, rank r
// computes the batches j with j % ranks == r (the same batches one process would form, so the same
// numbers), every rank receives every value, and rank 0 alone writes the cache file: the file a
// single process would write, byte for byte.
template <class Forward, comm::Communicator Comm = comm::none>
void precompute_reference(data::tokenized_preferences& data, const std::string& model_key, bool prefix_sharing,
                          std::optional<double> ld_alpha, const std::filesystem::path& cache_dir, std::size_t batch_size,
                          Forward&& forward, std::function<void(std::size_t, std::size_t)> progress = {}, Comm comm = {}) {
  fnv1a key;
  key.add(model_key);
  key.add(prefix_sharing ? "shared" : "rows");
  key.add(ld_alpha ? std::to_string(*ld_alpha) : "none");
  for (const auto& p : data.pairs) {
    key.add_values(p.prompt);
    key.add_values(p.chosen);
    key.add_values(p.rejected);
    if (p.split_prompt()) {  // keep_end's separate prompt of the rejected row (absent: the keys as before)
      key.add("rejected_prompt");
      key.add_values(p.rejected_prompt);
    }
  }
  const auto file = cache_dir / ("ref-" + key.hex() + ".jsonl");
  const std::size_t n = data.pairs.size();
  data.reference_chosen.assign(n, 0.0);
  data.reference_rejected.assign(n, 0.0);
  if (std::filesystem::exists(file)) {
    std::ifstream in(file);
    std::string line;
    std::size_t i = 0;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      nlohmann::json j;
      try {
        j = read_json(line, file.string() + ":" + std::to_string(i + 1));
        if (i >= n || j.at("line").get<std::size_t>() != data.lines[i]) throw std::runtime_error("does not match the dataset");
        data.reference_chosen[i] = j.at("ref_chosen_logps").get<double>();
        data.reference_rejected[i] = j.at("ref_rejected_logps").get<double>();
      } catch (const std::exception& e) {
        throw format_error(file.string() + ":" + std::to_string(i + 1), std::string("bad reference cache entry (") + e.what() +
                                                                            "); delete the file to recompute");
      }
      ++i;
    }
    if (i != n) throw format_error(file.string(), "holds " + std::to_string(i) + " entries for " + std::to_string(n) + " pairs; delete it to recompute");
    return;
  }
  const auto ranks = std::size_t(comm.size()), rank = std::size_t(comm.rank());
  std::vector<double> mine;  // (pair, chosen, rejected) triples of this rank's batches
  for (std::size_t start = 0, j = 0; start < n; start += batch_size, ++j) {
    if (j % ranks != rank) continue;
    const std::size_t end = std::min(n, start + batch_size);
    std::vector<models::tokenized_pair> pairs(data.pairs.begin() + std::ptrdiff_t(start), data.pairs.begin() + std::ptrdiff_t(end));
    models::sequence_logps lp;
    forward(models::pack_pairs(pairs, prefix_sharing), lp);
    const std::size_t m = end - start;
    for (std::size_t i = 0; i < m; ++i) {
      data.reference_chosen[start + i] = lp.logp[i];
      data.reference_rejected[start + i] = lp.logp[m + i];
      if (ranks > 1) mine.insert(mine.end(), {double(start + i), lp.logp[i], lp.logp[m + i]});
    }
    if (progress) progress(end, n);
  }
  if (ranks > 1) {
    const std::vector<double> all = comm.all_gather(std::span<const double>(mine));
    for (std::size_t t = 0; t + 2 < all.size(); t += 3) {
      data.reference_chosen[std::size_t(all[t])] = all[t + 1];
      data.reference_rejected[std::size_t(all[t])] = all[t + 2];
    }
  }
  if (rank == 0) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i)
      out += nlohmann::json{{"line", data.lines[i]}, {"ref_chosen_logps", data.reference_chosen[i]}, {"ref_rejected_logps", data.reference_rejected[i]}}.dump() + "\n";
    std::filesystem::create_directories(cache_dir);
    io::write_atomically(file, std::string_view(out));
  }
  comm.barrier();  // the cache file exists before any rank goes on
}

} // namespace prefopt::train
