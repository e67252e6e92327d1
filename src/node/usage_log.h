#pragma once
// The cluster's usage ledger in PostgreSQL ([state] postgres, --postgres):
// every answered generation and embedding request, one row each, written by
// the node that ran it into one shared table, so GET /usage on any node
// says what each model and each PC did over any period.
//
// Recording never waits for the database nor fails a request: records go
// to a queue (a mutex and a deque) that a writer thread empties into the
// database in batches (one multi-row
// INSERT each half second or 200 records). While the database is
// unreachable the records wait in the queue (up to 100,000; past that the
// oldest are dropped and counted) and the writer tries again every 2
// seconds, so an outage of the database loses nothing short of that.
//
// The table, created if missing:
//   tars_usage(id bigserial, at timestamptz, node text, model text,
//              kind text ("chat", "completion", "embedding", "rerank"),
//              prompt_tokens int, completion_tokens int,
//              duration_ms double precision, ttft_ms double precision (null
//              for embeddings), finish text ("stop", "length", "cancelled",
//              "error"; "" for embeddings))
// with an index on `at`.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace tars::node {

struct UsageRecord {
  int64_t at_ms = 0;           // unix milliseconds when the request ended (0: record() stamps it)
  std::string model;
  std::string kind;            // "chat" | "completion" | "embedding" | "rerank"
  int64_t prompt_tokens = 0;   // prompt, or the inputs' tokens
  int64_t completion_tokens = 0;
  double duration_ms = 0;      // arrival to end
  std::optional<double> ttft_ms;
  std::string finish;          // "stop" | "length" | "cancelled" | "error" | ""
};

struct UsageStats {
  uint64_t written = 0;   // rows in the database
  uint64_t dropped = 0;   // records lost to a full queue
  uint64_t errors = 0;    // failed connections and statements
  uint64_t queued = 0;    // waiting now
  bool connected = false;
};

// GET /usage's question: [since, until) and how to group.
struct UsageQuery {
  std::string since;  // a timestamp PostgreSQL reads ("2026-11-27", ISO 8601); "" = the beginning
  std::string until;  // "" = now
  std::string group = "model";  // "model" (model and node), "day" (day and model), "node"
};

// Checks a connection string (a postgresql:// URI or key=value pairs) the
// way libpq reads it. Throws tars::Error(kConfig) with libpq's reason.
void check_postgres_conninfo(const std::string& conninfo);

// The query parameters of GET /usage. Throws tars::Error(kInvalidArgument)
// naming a bad one.
UsageQuery usage_query_parse(const std::string& since, const std::string& until, const std::string& group);

class UsageLog {
 public:
  // Starts the writer (it connects in the background).
  UsageLog(std::string conninfo, std::string node_name);
  // Writes what is queued (waiting at most 2 s for the database), then stops.
  ~UsageLog();
  UsageLog(const UsageLog&) = delete;
  UsageLog& operator=(const UsageLog&) = delete;

  // Never blocks on the database. A record without a time (at_ms 0) gets
  // the current one.
  void record(UsageRecord r);
  UsageStats stats() const;
  // Sums over the query's period from the database (on a connection of its
  // own): {"since", "until", "group", "rows": [{model, node | day, requests,
  // prompt_tokens, completion_tokens, duration_s}]}. Throws
  // tars::Error(kUnavailable) when the database cannot be reached and
  // kInvalidArgument for a time it cannot read.
  nlohmann::json summary(const UsageQuery& q) const;

  static constexpr size_t kQueueLimit = 100000;

 private:
  void run();

  std::string conninfo_;
  std::string node_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<UsageRecord> queue_;
  bool stopping_ = false;
  UsageStats stats_;
  std::thread thread_;
};

}  // namespace tars::node
