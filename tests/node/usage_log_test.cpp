// The usage ledger (node/usage_log.h) against a real PostgreSQL server
// (Debian's postgresql, started here on a loopback port).
#include "node/usage_log.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/error.h"
#include "support/postgres_server.h"

namespace tars::node {
namespace {

using namespace std::chrono_literals;

// 2026-11-25T10:00:00Z and the next day, in unix milliseconds.
constexpr int64_t kDay1 = 1795600800000;
constexpr int64_t kDay2 = kDay1 + 86400000;

UsageRecord rec(int64_t at, const std::string& model, const std::string& kind, int64_t prompt, int64_t completion,
                double ms) {
  UsageRecord r;
  r.at_ms = at;
  r.model = model;
  r.kind = kind;
  r.prompt_tokens = prompt;
  r.completion_tokens = completion;
  r.duration_ms = ms;
  if (kind != "embedding") {
    r.ttft_ms = ms / 4;
    r.finish = "stop";
  }
  return r;
}

bool wait_written(const UsageLog& log, uint64_t n, std::chrono::milliseconds timeout = 20s) {
  for (auto deadline = std::chrono::steady_clock::now() + timeout; std::chrono::steady_clock::now() < deadline;) {
    if (log.stats().written >= n) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

TEST(UsageLog, ConninfoIsCheckedTheWayLibpqReadsIt) {
  EXPECT_NO_THROW(check_postgres_conninfo("postgresql://tars:pw@db.lan:5433/tars"));
  EXPECT_NO_THROW(check_postgres_conninfo("host=db.lan port=5432 dbname=tars"));
  for (const char* bad : {"postgresql://h/db?nosuchparam=1", "host=h nosuchkey=1", "host='unclosed", "mysql://h/db"}) {
    try {
      check_postgres_conninfo(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kConfig) << bad;
      EXPECT_NE(std::string(e.what()).find("state.postgres"), std::string::npos) << e.what();
    }
  }
}

TEST(UsageLog, QueryParametersAreChecked) {
  UsageQuery q = usage_query_parse("2026-11-25", "2026-11-27T00:00:00Z", "day");
  EXPECT_EQ(q.group, "day");
  EXPECT_EQ(usage_query_parse("", "", "").group, "model");
  EXPECT_THROW(usage_query_parse("2026-11-25'; DROP TABLE x; --", "", ""), Error);
  EXPECT_THROW(usage_query_parse("", std::string(65, '1'), ""), Error);
  EXPECT_THROW(usage_query_parse("", "", "week"), Error);
}

TEST(UsageLog, RecordsAreWrittenAndSummedByModelNodeAndDay) {
  test::PostgresServer pg;
  {
    UsageLog pc1(pg.url(), "pc1");
    UsageLog pc2(pg.url(), "pc2");
    pc1.record(rec(kDay1, "mistral", "chat", 100, 50, 2000));
    pc1.record(rec(kDay1 + 1000, "mistral", "completion", 10, 5, 300));
    pc1.record(rec(kDay2, "mistral", "chat", 200, 20, 1000));
    pc2.record(rec(kDay1, "minilm", "embedding", 64, 0, 12.5));
    pc2.record(rec(kDay2, "minilm", "embedding", 36, 0, 7.5));
    ASSERT_TRUE(wait_written(pc1, 3));
    ASSERT_TRUE(wait_written(pc2, 2));
    EXPECT_TRUE(pc1.stats().connected);
    EXPECT_EQ(pc1.stats().errors, 0u);
    EXPECT_EQ(pc1.stats().queued, 0u);

    nlohmann::json by_model = pc2.summary(usage_query_parse("", "", "model"));
    EXPECT_EQ(by_model["rows"], nlohmann::json::parse(R"([
      {"model": "minilm", "node": "pc2", "requests": 2, "prompt_tokens": 100, "completion_tokens": 0, "duration_s": 0.02},
      {"model": "mistral", "node": "pc1", "requests": 3, "prompt_tokens": 310, "completion_tokens": 75, "duration_s": 3.3}
    ])")) << by_model.dump();
    EXPECT_EQ(by_model["totals"]["requests"], 5);
    EXPECT_EQ(by_model["since"], nullptr);

    nlohmann::json by_day = pc1.summary(usage_query_parse("", "", "day"));
    ASSERT_EQ(by_day["rows"].size(), 4u) << by_day.dump();
    EXPECT_EQ(by_day["rows"][0]["day"], "2026-11-25");
    EXPECT_EQ(by_day["rows"][0]["model"], "minilm");
    EXPECT_EQ(by_day["rows"][1]["day"], "2026-11-25");
    EXPECT_EQ(by_day["rows"][1]["requests"], 2);
    EXPECT_EQ(by_day["rows"][3]["day"], "2026-11-26");
    EXPECT_EQ(by_day["rows"][3]["prompt_tokens"], 200);

    // [since, until): the second day only.
    nlohmann::json day2 = pc1.summary(usage_query_parse("2026-11-26", "2026-11-27", "node"));
    EXPECT_EQ(day2["rows"], nlohmann::json::parse(R"([
      {"node": "pc1", "requests": 1, "prompt_tokens": 200, "completion_tokens": 20, "duration_s": 1.0},
      {"node": "pc2", "requests": 1, "prompt_tokens": 36, "completion_tokens": 0, "duration_s": 0.0075}
    ])")) << day2.dump();
    EXPECT_EQ(day2["since"], "2026-11-26");

    // A time PostgreSQL cannot read is the client's error.
    try {
      pc1.summary(usage_query_parse("yesterday-ish", "", "model"));
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    }
  }
  // What the rows hold, column by column.
  EXPECT_EQ(pg.query("SELECT count(*) FROM tars_usage WHERE ttft_ms IS NULL AND kind = 'embedding'"), "2");
  EXPECT_EQ(pg.query("SELECT ttft_ms FROM tars_usage WHERE kind = 'completion'"), "75");
  EXPECT_EQ(pg.query("SELECT finish FROM tars_usage WHERE kind = 'completion'"), "stop");
  EXPECT_EQ(pg.query("SELECT extract(epoch FROM at)::bigint FROM tars_usage WHERE kind = 'completion'"),
            std::to_string((kDay1 + 1000) / 1000));
}

TEST(UsageLog, ADatabaseThatIsAwayLosesNothingItComesBackFor) {
  const int port = test::free_port();
  UsageLog log("postgresql://tars@127.0.0.1:" + std::to_string(port) + "/postgres", "pc1");
  for (int i = 0; i < 3; ++i) log.record(rec(kDay1 + i, "mistral", "chat", 10, 1, 100));
  // The writer tries, fails, keeps them.
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       log.stats().errors == 0 && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(20ms);
  }
  UsageStats s = log.stats();
  EXPECT_GE(s.errors, 1u);
  EXPECT_EQ(s.queued, 3u);
  EXPECT_EQ(s.written, 0u);
  EXPECT_FALSE(s.connected);
  // The database comes up on that port: everything is written.
  test::PostgresServer pg(port);
  log.record(rec(kDay1 + 3, "mistral", "chat", 10, 1, 100));
  ASSERT_TRUE(wait_written(log, 4));
  EXPECT_EQ(pg.query("SELECT count(*) FROM tars_usage"), "4");
  // Restarted under it: the next records wait, then go in too.
  pg.stop();
  log.record(rec(kDay1 + 4, "mistral", "chat", 10, 1, 100));
  std::this_thread::sleep_for(1500ms);
  pg.start();
  log.record(rec(kDay1 + 5, "mistral", "chat", 10, 1, 100));
  ASSERT_TRUE(wait_written(log, 6));
  EXPECT_EQ(pg.query("SELECT count(*) FROM tars_usage"), "6");
  EXPECT_EQ(log.stats().dropped, 0u);
}

TEST(UsageLog, WhatIsQueuedIsWrittenBeforeTheLogStops) {
  test::PostgresServer pg;
  {
    UsageLog log(pg.url(), "pc1");
    for (int i = 0; i < 450; ++i) log.record(rec(kDay1 + i, "mistral", "chat", 1, 1, 1));
  }  // destroyed at once: the writer empties the queue first
  EXPECT_EQ(pg.query("SELECT count(*) FROM tars_usage"), "450");
}

TEST(UsageLog, AFullQueueDropsTheOldestAndCountsThem) {
  UsageLog log("postgresql://tars@127.0.0.1:" + std::to_string(test::free_port()) + "/postgres", "pc1");
  for (size_t i = 0; i < UsageLog::kQueueLimit + 5; ++i) log.record(rec(kDay1, "m", "chat", 1, 1, 1));
  UsageStats s = log.stats();
  EXPECT_EQ(s.dropped, 5u);
  EXPECT_EQ(s.queued, UsageLog::kQueueLimit);
}

TEST(UsageLog, SummaryWithoutADatabaseIsUnavailable) {
  UsageLog log("postgresql://tars@127.0.0.1:" + std::to_string(test::free_port()) + "/postgres", "pc1");
  try {
    log.summary(UsageQuery{});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
    EXPECT_NE(std::string(e.what()).find("cannot reach the database"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tars::node
