// Model files over HTTP: the /files API of an in-process node and
// fetch_model against it (and against a server that drops the connection).
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "node/files_api.h"
#include "node/http_server.h"
#include "node/model_fetch.h"
#include "node/model_host.h"
#include "support/test_support.h"

namespace tars::node {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// A node serving one declared (on-demand, so never loaded) model file: a
// 3 MiB random file, which the file API serves like any model file.
class FilesApiTest : public ::testing::Test {
 protected:
  void start(const std::string& token = "") {
    content_ = random_bytes(3 << 20, 7);
    test::write_file(src_.file("big.gguf"), content_);
    config_.data_dir = data_.path();
    config_.join_token = token;
    ModelDecl d;
    d.path = src_.file("big.gguf");
    d.alias = "big";
    d.load = "on_demand";
    config_.models = {d};
    host_ = std::make_unique<ModelHost>(config_);
    HttpServerOptions o;
    o.port = 0;
    server_ = std::make_unique<HttpServer>(o);
    server_->add_routes(files_routes(*host_, config_));
    server_->bind();
    thread_ = std::thread([this] { server_->run(); });
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }
  httplib::Client client() { return httplib::Client("127.0.0.1", server_->port()); }
  FetchRequest request(const std::string& token = "") {
    FetchRequest r;
    r.url_base = base_;
    r.model_id = "big";
    r.token = token;
    r.dest_dir = dest_.path() + "/models";
    r.retry_delay_ms = 10;
    return r;
  }
  std::string sha() const { return test::sha256_hex(content_.data(), content_.size()); }

  test::TempDir src_, data_, dest_;
  std::string content_;
  NodeConfig config_;
  std::unique_ptr<ModelHost> host_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  std::string base_;
};

TEST_F(FilesApiTest, InfoGivesSizeAndSha256AndCachesIt) {
  start();
  ModelFileInfo info = fetch_model_info(base_, "big", "");
  EXPECT_EQ(info.id, "big");
  EXPECT_EQ(info.file, "big.gguf");
  EXPECT_EQ(info.size, content_.size());
  EXPECT_EQ(info.sha256, sha());
  std::string cache = test::read_file(data_.path() + "/state/file_sha256.json");
  EXPECT_NE(cache.find(sha()), std::string::npos);
  // A changed file is hashed again (size and mtime are the cache key).
  std::string changed = random_bytes(1000, 9);
  test::write_file(src_.file("big.gguf"), changed);
  EXPECT_EQ(fetch_model_info(base_, "big", "").sha256,
            test::sha256_hex(changed.data(), changed.size()));
}

TEST_F(FilesApiTest, FullDownloadVerifiesAndRenames) {
  start();
  FetchRegistry registry;
  std::vector<FetchProgress> seen;
  std::string path = fetch_model(request(), [&](const FetchProgress& p) { seen.push_back(p); },
                                 &registry);
  EXPECT_EQ(path, dest_.path() + "/models/big.gguf");
  EXPECT_EQ(test::read_file(path), content_);
  EXPECT_FALSE(fs::exists(path + ".part"));
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().state, "done");
  json r = registry.to_json();
  EXPECT_EQ(r["big"]["state"], "done");
  EXPECT_EQ(r["big"]["bytes"], content_.size());
  EXPECT_DOUBLE_EQ(r["big"]["percent"].get<double>(), 100.0);
}

TEST_F(FilesApiTest, ResumesAPartialPartFileWithARange) {
  start();
  const size_t half = 1 << 20;
  fs::create_directories(dest_.path() + "/models");
  test::write_file(dest_.path() + "/models/big.gguf.part", content_.substr(0, half));
  uint64_t first_bytes = 0;
  std::string path = fetch_model(request(), [&](const FetchProgress& p) {
    if (p.state == "downloading" && first_bytes == 0) first_bytes = p.bytes;
  });
  EXPECT_EQ(test::read_file(path), content_);
  // The first progress report already counts the bytes that were on disk:
  // the download went on from there, it did not start over.
  EXPECT_GT(first_bytes, half);
}

TEST_F(FilesApiTest, Sha256MismatchIsRefusedAndThePartRemoved) {
  start();
  FetchRequest r = request();
  r.file = "big.gguf";
  r.size = content_.size();
  r.sha256 = std::string(64, '0');
  try {
    fetch_model(r);
    FAIL() << "a sha256 mismatch was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptData);
    EXPECT_NE(std::string(e.what()).find("sha256 mismatch"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dest_.path() + "/models/big.gguf.part"));
  EXPECT_FALSE(fs::exists(dest_.path() + "/models/big.gguf"));

  // A damaged .part (wrong bytes, right length so far) is caught the same way.
  fs::create_directories(dest_.path() + "/models");
  test::write_file(dest_.path() + "/models/big.gguf.part", random_bytes(1 << 20, 99));
  EXPECT_THROW(fetch_model(request()), Error);
  EXPECT_FALSE(fs::exists(dest_.path() + "/models/big.gguf.part"));
  // The next fetch starts clean and succeeds.
  EXPECT_EQ(test::read_file(fetch_model(request())), content_);
}

TEST_F(FilesApiTest, TokenIsRequiredWhenTheNodeHasOne) {
  start("s3cret");
  auto c = client();
  auto none = c.Get("/files/big/info");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(json::parse(none->body)["error"]["code"], "invalid_token");
  auto wrong = c.Get("/files/big", {{"Authorization", "Bearer nope"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_NE(wrong->body.find("wrong join token"), std::string::npos);
  auto right = c.Get("/files/big", {{"Authorization", "Bearer s3cret"}});
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, 200);
  EXPECT_EQ(right->body, content_);

  try {
    fetch_model(request("nope"));
    FAIL() << "a wrong token was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token"), std::string::npos) << e.what();
  }
  EXPECT_EQ(test::read_file(fetch_model(request("s3cret"))), content_);
}

TEST_F(FilesApiTest, UnknownModelIs404) {
  start();
  auto c = client();
  for (const char* path : {"/files/nope", "/files/nope/info", "/files/..%2Fetc%2Fpasswd"}) {
    auto r = c.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 404) << path;
    EXPECT_TRUE(json::parse(r->body).contains("error")) << path;
  }
  FetchRequest r = request();
  r.model_id = "nope";
  try {
    fetch_model(r);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound) << e.what();
  }
}

TEST_F(FilesApiTest, RangesGive206AndBadRangesGive416) {
  start();
  auto c = client();
  auto part = c.Get("/files/big", {{"Range", "bytes=10-19"}});
  ASSERT_TRUE(part);
  EXPECT_EQ(part->status, 206);
  EXPECT_EQ(part->get_header_value("Content-Range"),
            "bytes 10-19/" + std::to_string(content_.size()));
  EXPECT_EQ(part->body, content_.substr(10, 10));

  auto tail = c.Get("/files/big", {{"Range", "bytes=-5"}});
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail->status, 206);
  EXPECT_EQ(tail->body, content_.substr(content_.size() - 5));

  // An end past the file is clamped.
  auto clamp = c.Get("/files/big", {{"Range", "bytes=" + std::to_string(content_.size() - 3) + "-99999999"}});
  ASSERT_TRUE(clamp);
  EXPECT_EQ(clamp->status, 206);
  EXPECT_EQ(clamp->body, content_.substr(content_.size() - 3));

  auto bad = c.Get("/files/big", {{"Range", "bytes=" + std::to_string(content_.size()) + "-"}});
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 416);
  EXPECT_EQ(bad->get_header_value("Content-Range"), "bytes */" + std::to_string(content_.size()));
  EXPECT_EQ(json::parse(bad->body)["error"]["code"], "range_not_satisfiable");

  auto backwards = c.Get("/files/big", {{"Range", "bytes=20-10"}});
  ASSERT_TRUE(backwards);
  EXPECT_EQ(backwards->status, 416);
}

TEST_F(FilesApiTest, RefusesFileNamesThatLeaveTheModelDirectory) {
  start();
  for (const char* name : {"../evil.gguf", "a/b.gguf", ".."}) {
    FetchRequest r = request();
    r.file = name;
    r.size = content_.size();
    r.sha256 = sha();
    try {
      fetch_model(r);
      FAIL() << name;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << name;
    }
  }
  EXPECT_FALSE(fs::exists(dest_.path() + "/evil.gguf"));
  EXPECT_FALSE(fs::exists(dest_.path() + "/evil.gguf.part"));
}

// A server that drops the connection after 1 MiB on each of its first two
// answers: the client resumes with Range requests and gets the whole file.
// (httplib's content provider slices by the Range header itself.)
TEST(ModelFetch, ResumesAfterDroppedConnections) {
  std::string content = random_bytes((5 << 20) / 2, 3);
  std::atomic<int> requests{0};
  std::vector<std::string> ranges;
  std::mutex mu;
  httplib::Server srv;
  srv.Get("/files/m", [&](const httplib::Request& req, httplib::Response& res) {
    int n = requests++;
    {
      std::lock_guard<std::mutex> lock(mu);
      ranges.push_back(req.get_header_value("Range"));
    }
    res.set_content_provider(content.size(), "application/octet-stream",
                             [&content, n](size_t off, size_t len, httplib::DataSink& sink) {
                               size_t limit = n < 2 ? std::min<size_t>(len, 1 << 20) : len;
                               sink.write(content.data() + off, limit);
                               return limit == len;  // false: drop the connection
                             });
  });
  int port = srv.bind_to_any_port("127.0.0.1");
  std::thread th([&] { srv.listen_after_bind(); });
  test::TempDir dest;
  FetchRequest r;
  r.url_base = "http://127.0.0.1:" + std::to_string(port);
  r.model_id = "m";
  r.dest_dir = dest.path();
  r.file = "m.gguf";
  r.size = content.size();
  r.sha256 = test::sha256_hex(content.data(), content.size());
  r.retry_delay_ms = 10;
  FetchRegistry registry;
  std::string path;
  EXPECT_NO_THROW(path = fetch_model(r, {}, &registry));
  srv.stop();
  th.join();
  EXPECT_EQ(test::read_file(path), content);
  EXPECT_EQ(requests, 3);
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_EQ(ranges[0], "");
  EXPECT_EQ(ranges[1], "bytes=1048576-");
  EXPECT_EQ(ranges[2], "bytes=2097152-");
  EXPECT_EQ(registry.to_json()["m"]["resumes"], 2);
}

// A peer's /info answer with a size that is not a byte count is refused
// with the reason (get<uint64_t>() cast 1e300, undefined, and wrapped -1).
TEST(ModelFetch, InfoWithABadSizeIsRefused) {
  std::mutex mu;
  std::string size = "1";
  httplib::Server srv;
  srv.Get("/files/m/info", [&](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu);
    res.set_content(R"({"id": "m", "file": "m.gguf", "sha256": "00", "size": )" + size + "}", "application/json");
  });
  int port = srv.bind_to_any_port("127.0.0.1");
  std::thread th([&] { srv.listen_after_bind(); });
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  EXPECT_EQ(fetch_model_info(base, "m", "").size, 1u);
  for (const char* bad : {"1e300", "-1", "0.5", "\"12\""}) {
    {
      std::lock_guard<std::mutex> lock(mu);
      size = bad;
    }
    try {
      fetch_model_info(base, "m", "");
      ADD_FAILURE() << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kCorruptData) << e.what();
      EXPECT_NE(std::string(e.what()).find("size"), std::string::npos) << e.what();
    }
  }
  srv.stop();
  th.join();
}

TEST(ModelFetch, GivesUpAfterMaxResumesAndKeepsThePart) {
  std::string content = random_bytes(3 << 20, 5);
  httplib::Server srv;
  srv.Get("/files/m", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content_provider(content.size(), "application/octet-stream",
                             [&content](size_t off, size_t len, httplib::DataSink& sink) {
                               size_t limit = std::min<size_t>(len, 1 << 20);
                               sink.write(content.data() + off, limit);
                               return limit == len;
                             });
  });
  int port = srv.bind_to_any_port("127.0.0.1");
  std::thread th([&] { srv.listen_after_bind(); });
  test::TempDir dest;
  FetchRequest r;
  r.url_base = "http://127.0.0.1:" + std::to_string(port);
  r.model_id = "m";
  r.dest_dir = dest.path();
  r.file = "m.gguf";
  r.size = content.size();
  r.sha256 = test::sha256_hex(content.data(), content.size());
  r.retry_delay_ms = 10;
  r.max_resumes = 1;
  try {
    fetch_model(r);
    ADD_FAILURE() << "a fetch that never completes succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
    EXPECT_NE(std::string(e.what()).find("gave up"), std::string::npos) << e.what();
  }
  srv.stop();
  th.join();
  EXPECT_EQ(fs::file_size(dest.path() + "/m.gguf.part"), 2u << 20);
  EXPECT_FALSE(fs::exists(dest.path() + "/m.gguf"));
}

}  // namespace
}  // namespace tars::node
