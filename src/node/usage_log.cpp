#include "node/usage_log.h"

#include <libpq-fe.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <memory>

#include "common/error.h"

namespace tars::node {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr size_t kBatch = 200;
constexpr auto kRetry = 2s;

using Conn = std::unique_ptr<PGconn, void (*)(PGconn*)>;
using Result = std::unique_ptr<PGresult, void (*)(PGresult*)>;

Result result_of(PGresult* r) { return Result(r, PQclear); }

// A connection with a time-out on connecting, whatever the string says
// (libpq expands the string given as dbname; later keywords override it).
Conn connect(const std::string& conninfo) {
  const char* keys[] = {"dbname", "connect_timeout", "application_name", nullptr};
  const char* values[] = {conninfo.c_str(), "3", "tars", nullptr};
  return Conn(PQconnectdbParams(keys, values, /*expand_dbname=*/1), PQfinish);
}

std::string first_line(const char* message) {
  std::string m = message ? message : "";
  if (auto nl = m.find('\n'); nl != std::string::npos) m.resize(nl);
  return m;
}

// Creates the table and its index if missing; the error, or "".
std::string ensure_table(PGconn* c) {
  // One implicit transaction; the advisory lock serializes nodes that
  // start together (two CREATE TABLE IF NOT EXISTS at once can collide).
  Result r = result_of(PQexec(c,
                              "SELECT pg_advisory_xact_lock(7216210);"
                              "CREATE TABLE IF NOT EXISTS tars_usage ("
                              " id bigserial PRIMARY KEY, at timestamptz NOT NULL, node text NOT NULL,"
                              " model text NOT NULL, kind text NOT NULL, prompt_tokens bigint NOT NULL,"
                              " completion_tokens bigint NOT NULL, duration_ms double precision NOT NULL,"
                              " ttft_ms double precision, finish text NOT NULL);"
                              "CREATE INDEX IF NOT EXISTS tars_usage_at ON tars_usage (at);"));
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) return first_line(PQerrorMessage(c));
  return "";
}

// One multi-row INSERT for the batch; the error, or "".
std::string insert(PGconn* c, const std::string& node, const std::vector<UsageRecord>& batch) {
  constexpr int kCols = 9;
  std::string sql =
      "INSERT INTO tars_usage (at, node, model, kind, prompt_tokens, completion_tokens, duration_ms, "
      "ttft_ms, finish) VALUES ";
  std::vector<std::string> text;
  text.reserve(batch.size() * kCols);
  std::vector<const char*> values;
  for (size_t i = 0; i < batch.size(); ++i) {
    const UsageRecord& r = batch[i];
    const int p = static_cast<int>(i) * kCols;
    if (i) sql += ',';
    sql.append("(to_timestamp($").append(std::to_string(p + 1)).append("::double precision / 1000)");
    for (int k = 2; k <= kCols; ++k) sql += ",$" + std::to_string(p + k);
    sql += ")";
    text.push_back(std::to_string(r.at_ms));
    text.push_back(node);
    text.push_back(r.model);
    text.push_back(r.kind);
    text.push_back(std::to_string(r.prompt_tokens));
    text.push_back(std::to_string(r.completion_tokens));
    text.push_back(fmt::format("{}", r.duration_ms));
    text.push_back(r.ttft_ms ? fmt::format("{}", *r.ttft_ms) : "");
    text.push_back(r.finish);
  }
  for (size_t i = 0; i < text.size(); ++i) {
    const bool null_ttft = i % kCols == 7 && !batch[i / kCols].ttft_ms;
    values.push_back(null_ttft ? nullptr : text[i].c_str());
  }
  Result r = result_of(PQexecParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                                    nullptr, nullptr, 0));
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) return first_line(PQerrorMessage(c));
  return "";
}

}  // namespace

void check_postgres_conninfo(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (!opts) {
    std::string why = err ? first_line(err) : "out of memory";
    if (err) PQfreemem(err);
    throw Error(ErrorCode::kConfig, "state.postgres: " + why +
                                        " (expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE)");
  }
  PQconninfoFree(opts);
}

UsageLog::UsageLog(std::string conninfo, std::string node_name)
    : conninfo_(std::move(conninfo)), node_(std::move(node_name)) {
  check_postgres_conninfo(conninfo_);
  thread_ = std::thread([this] { run(); });
}

UsageLog::~UsageLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void UsageLog::record(UsageRecord r) {
  if (r.at_ms == 0) {
    r.at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= kQueueLimit) {
      queue_.pop_front();
      ++stats_.dropped;
    }
    queue_.push_back(std::move(r));
    stats_.queued = queue_.size();
  }
  cv_.notify_all();
}

UsageStats UsageLog::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void UsageLog::run() {
  Conn conn(nullptr, PQfinish);
  Clock::time_point retry_at{}, stop_deadline{};
  bool stop_seen = false;
  for (;;) {
    std::vector<UsageRecord> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, 500ms, [&] { return stopping_ || (queue_.size() >= kBatch && Clock::now() >= retry_at); });
      if (stopping_ && !stop_seen) {
        stop_seen = true;
        stop_deadline = Clock::now() + 2s;
      }
      if (stopping_ && (queue_.empty() || Clock::now() > stop_deadline)) {
        if (!queue_.empty()) {
          spdlog::warn("usage log: {} records not written (the database did not answer in time)", queue_.size());
        }
        break;
      }
      if (queue_.empty()) continue;
      if (Clock::now() < retry_at) {
        if (stopping_) cv_.wait_for(lock, 100ms);
        continue;
      }
      const size_t n = std::min(kBatch, queue_.size());
      batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + n));
      queue_.erase(queue_.begin(), queue_.begin() + n);
    }
    std::string error;
    if (!conn) {
      conn = connect(conninfo_);
      if (PQstatus(conn.get()) != CONNECTION_OK) error = first_line(PQerrorMessage(conn.get()));
      else error = ensure_table(conn.get());
      if (error.empty()) spdlog::info("usage log: writing to PostgreSQL ({} on {})", PQdb(conn.get()), PQhost(conn.get()));
    }
    if (error.empty()) error = insert(conn.get(), node_, batch);
    std::lock_guard<std::mutex> lock(mu_);
    if (error.empty()) {
      stats_.written += batch.size();
      stats_.connected = true;
    } else {
      // Back to the front of the queue, oldest first, for the next try.
      if (stats_.connected || stats_.errors == 0) {
        spdlog::warn("usage log: {}; keeping {} records queued, trying again every 2 s", error, batch.size());
      }
      ++stats_.errors;
      stats_.connected = false;
      conn.reset();
      retry_at = Clock::now() + kRetry;
      queue_.insert(queue_.begin(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
      while (queue_.size() > kQueueLimit) {
        queue_.pop_front();
        ++stats_.dropped;
      }
    }
    stats_.queued = queue_.size();
  }
}

nlohmann::json UsageLog::summary(const UsageQuery& q) const {
  Conn c = connect(conninfo_);
  if (PQstatus(c.get()) != CONNECTION_OK) {
    throw Error(ErrorCode::kUnavailable, "usage log: cannot reach the database: " + first_line(PQerrorMessage(c.get())));
  }
  if (std::string e = ensure_table(c.get()); !e.empty()) throw Error(ErrorCode::kUnavailable, "usage log: " + e);
  result_of(PQexec(c.get(), "SET TIME ZONE 'UTC'"));
  std::string keys = q.group == "day" ? "to_char(date_trunc('day', at), 'YYYY-MM-DD'), model"
                     : q.group == "node" ? "node"
                                         : "model, node";
  std::string sql = "SELECT " + keys +
                    ", count(*), sum(prompt_tokens), sum(completion_tokens), sum(duration_ms) / 1000.0 "
                    "FROM tars_usage WHERE at >= COALESCE($1::timestamptz, '-infinity') "
                    "AND at < COALESCE($2::timestamptz, 'infinity') GROUP BY " + keys + " ORDER BY " + keys;
  const char* params[2] = {q.since.empty() ? nullptr : q.since.c_str(), q.until.empty() ? nullptr : q.until.c_str()};
  Result r = result_of(PQexecParams(c.get(), sql.c_str(), 2, nullptr, params, nullptr, nullptr, 0));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
    std::string why = first_line(PQerrorMessage(c.get()));
    // Class 22: data exception (a time PostgreSQL cannot read).
    if (state && std::string(state).rfind("22", 0) == 0) throw Error(ErrorCode::kInvalidArgument, "usage: " + why);
    throw Error(ErrorCode::kUnavailable, "usage log: " + why);
  }
  nlohmann::json rows = nlohmann::json::array();
  const int n_keys = q.group == "model" || q.group == "day" ? 2 : 1;
  const char* names[2] = {q.group == "day" ? "day" : q.group == "node" ? "node" : "model",
                          q.group == "day" ? "model" : "node"};
  int64_t requests = 0, prompt = 0, completion = 0;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    nlohmann::json row;
    for (int k = 0; k < n_keys; ++k) row[names[k]] = PQgetvalue(r.get(), i, k);
    row["requests"] = std::stoll(PQgetvalue(r.get(), i, n_keys));
    row["prompt_tokens"] = std::stoll(PQgetvalue(r.get(), i, n_keys + 1));
    row["completion_tokens"] = std::stoll(PQgetvalue(r.get(), i, n_keys + 2));
    row["duration_s"] = std::stod(PQgetvalue(r.get(), i, n_keys + 3));
    requests += row["requests"].get<int64_t>();
    prompt += row["prompt_tokens"].get<int64_t>();
    completion += row["completion_tokens"].get<int64_t>();
    rows.push_back(std::move(row));
  }
  auto or_null = [](const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); };
  return {{"since", or_null(q.since)},
          {"until", or_null(q.until)},
          {"group", q.group},
          {"rows", rows},
          {"totals", {{"requests", requests}, {"prompt_tokens", prompt}, {"completion_tokens", completion}}}};
}

}  // namespace tars::node
