#include "cluster/forward.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"

namespace tars::cluster {

namespace {

// One upstream request, run on its own thread and read by the handler (to
// learn whether and how the response started) and then by the response's
// content provider.
struct Upstream {
  std::mutex mu;
  std::condition_variable cv;
  bool started = false;    // the status line and headers arrived
  bool finished = false;   // the upstream request is over (either way)
  bool cancelled = false;  // our client went away: stop reading
  bool failed = false;     // transport error (connect, read, truncated body)
  int status = 0;
  std::string content_type;
  std::string error;
  std::deque<std::string> chunks;  // received, not yet relayed
  std::string tail;                // the stream's last bytes, to see its end marker (JSON lines)
  // Server-sent events: the start of the last whole event and of the one
  // coming in, to see how the stream ended (an API's closing event can be
  // far longer than any tail: the Responses API repeats the whole answer).
  std::string last_event, event_in;
  char last_byte = 0;
};

// Enough for the last line of a JSON-lines stream (Ollama's closing line
// with its counts and durations is about 300 bytes).
constexpr size_t kTailBytes = 4096;
// Enough of an event's start for its name and first field.
constexpr size_t kEventHeadBytes = 256;

// Events end at a blank line.
void scan_events(Upstream& up, const char* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const char c = data[i];
    if (c == '\n' && up.last_byte == '\n') {
      if (!up.event_in.empty()) up.last_event = std::exchange(up.event_in, std::string());
    } else if (c != '\r' && up.event_in.size() < kEventHeadBytes && !(c == '\n' && up.event_in.empty())) {
      up.event_in += c;
    }
    if (c != '\r') up.last_byte = c;
  }
}

void run_upstream(std::shared_ptr<Upstream> up, std::string url, httplib::Request request,
                  ForwardOptions options) {
  httplib::Client cli(url);
  cli.set_connection_timeout(std::chrono::duration_cast<std::chrono::microseconds>(options.connect_timeout));
  auto read = std::max(options.start_timeout, options.read_timeout);
  cli.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(read));
  cli.set_keep_alive(false);
  cli.set_tcp_nodelay(true);  // the request's headers and body go out at once (http_server.cpp)
  request.response_handler = [up](const httplib::Response& head) {
    std::lock_guard lock(up->mu);
    up->started = true;
    up->status = head.status;
    up->content_type = head.get_header_value("Content-Type");
    up->cv.notify_all();
    return !up->cancelled;
  };
  request.content_receiver = [up](const char* data, size_t n, uint64_t, uint64_t) {
    std::lock_guard lock(up->mu);
    if (up->cancelled) return false;
    up->chunks.emplace_back(data, n);
    up->tail.append(data, n);
    if (up->tail.size() > kTailBytes) up->tail.erase(0, up->tail.size() - kTailBytes);
    scan_events(*up, data, n);
    up->cv.notify_all();
    return true;
  };
  httplib::Result result = cli.send(request);
  std::lock_guard lock(up->mu);
  if (!result && !up->cancelled) {
    up->failed = true;
    up->error = httplib::to_string(result.error());
  }
  up->finished = true;
  up->cv.notify_all();
}

// The streamed answers relayed as they come: server-sent events (OpenAI's,
// Anthropic's, the Responses API's and llama-server's endpoints) and JSON
// lines (Ollama's).
enum class StreamKind { kNone, kEvents, kJsonLines };

StreamKind stream_kind(const std::string& content_type) {
  if (content_type.rfind("text/event-stream", 0) == 0) return StreamKind::kEvents;
  if (content_type.rfind("application/x-ndjson", 0) == 0) return StreamKind::kJsonLines;
  return StreamKind::kNone;
}

// Whether a stream ended with its API's closing message. Events: OpenAI's
// "data: [DONE]", Anthropic's message_stop, the Responses API's
// response.completed / .incomplete / .failed, llama-server's last event
// ({"stop": true, ...}), or an error event. JSON lines: a last line that is
// {"done": true, ...} or an error.
bool stream_closed(StreamKind kind, const Upstream& up) {
  const std::string& tail = up.tail;
  if (kind == StreamKind::kEvents) {
    const std::string& last = up.event_in.empty() ? up.last_event : up.event_in;
    for (const char* end : {"data: [DONE]", "event: message_stop", "event: error", "event: response.completed",
                            "event: response.incomplete", "event: response.failed", "data: {\"stop\":true",
                            "data: {\"error\""}) {
      if (last.rfind(end, 0) == 0) return true;
    }
    return false;
  }
  size_t end = tail.find_last_not_of("\r\n");
  if (end == std::string::npos) return false;
  size_t begin = tail.find_last_of('\n', end);
  begin = begin == std::string::npos ? 0 : begin + 1;
  const nlohmann::json last = nlohmann::json::parse(tail.substr(begin, end + 1 - begin), nullptr, false);
  return last.is_object() && ((last.contains("done") && last["done"] == true) || last.contains("error"));
}

// The stream's last message when its node failed, in the stream's format:
// Ollama's error line, Anthropic's and the Responses API's error events (by
// the request's path), else an OpenAI-shaped error in a data event.
std::string stream_error(StreamKind kind, const std::string& path, const std::string& message) {
  if (kind == StreamKind::kJsonLines) return nlohmann::json{{"error", message}}.dump() + "\n";
  if (path.rfind("/v1/messages", 0) == 0) {
    return "event: error\ndata: " +
           nlohmann::json{{"type", "error"}, {"error", {{"type", "api_error"}, {"message", message}}}}.dump() + "\n\n";
  }
  if (path == "/v1/responses") {
    return "event: error\ndata: " +
           nlohmann::json{{"type", "error"}, {"code", "upstream_failed"}, {"message", message}, {"param", nullptr}}
               .dump() +
           "\n\n";
  }
  nlohmann::json e = {{"error", {{"message", message}, {"type", "server_error"}, {"code", "upstream_failed"}}}};
  return "data: " + e.dump() + "\n\n";
}

}  // namespace

void forward_request(const httplib::Request& req, httplib::Response& res,
                     const std::vector<Replica>& replicas, const ForwardOptions& options) {
  std::vector<std::string> failures;
  auto outcome = [&options](const Replica& rep, const char* what) {
    if (options.on_outcome) options.on_outcome(rep, what);
  };
  for (const Replica& rep : replicas) {
    httplib::Request r;
    r.method = req.method;
    r.path = req.path;
    r.body = req.body;
    std::string ct = req.get_header_value("Content-Type");
    r.headers.emplace("Content-Type", ct.empty() ? "application/json" : ct);
    r.headers.emplace(kForwardedHeader, options.self_id);
    if (req.has_header("Accept")) r.headers.emplace("Accept", req.get_header_value("Accept"));
    auto up = std::make_shared<Upstream>();
    std::thread(run_upstream, up, rep.url, std::move(r), options).detach();

    std::unique_lock lock(up->mu);
    up->cv.wait(lock, [&] { return up->started || up->finished; });
    std::string where = fmt::format("node {} ({})", rep.node_name.empty() ? rep.node_id : rep.node_name, rep.url);
    if (!up->started) {
      failures.push_back(where + ": " + up->error);
      if (options.on_unreachable && up->error == "Connection") options.on_unreachable(rep.node_id);
      spdlog::warn("forwarding {} {} to {} failed before it started ({}); trying the next node",
                   req.method, req.path, where, up->error);
      outcome(rep, "skipped");
      continue;
    }
    res.status = up->status;
    res.set_header("X-Tars-Served-By", rep.node_id);
    std::string content_type = up->content_type.empty() ? "application/json" : up->content_type;
    const StreamKind kind = stream_kind(content_type);
    if (kind == StreamKind::kNone) {
      // A whole JSON answer: wait for all of it. A non-streaming request that
      // broke off has not given the client anything yet: the next node may
      // serve it.
      up->cv.wait(lock, [&] { return up->finished; });
      if (up->failed) {
        failures.push_back(where + ": " + up->error + " (response broke off)");
        outcome(rep, "skipped");
        continue;
      }
      std::string body;
      for (auto& c : up->chunks) body += c;
      res.set_content(std::move(body), content_type);
      outcome(rep, "answered");
      return;
    }
    // A stream: relay it as it comes.
    lock.unlock();
    std::function<void(const char*)> stream_outcome = [on = options.on_outcome, rep](const char* what) {
      if (on) on(rep, what);
    };
    res.set_chunked_content_provider(
        content_type,
        [up, where, kind, stream_outcome, path = req.path](size_t, httplib::DataSink& sink) {
          std::unique_lock l(up->mu);
          up->cv.wait(l, [&] { return !up->chunks.empty() || up->finished; });
          while (!up->chunks.empty()) {
            std::string c = std::move(up->chunks.front());
            up->chunks.pop_front();
            l.unlock();
            if (!sink.write(c.data(), c.size())) {
              {
                std::lock_guard g(up->mu);
                up->cancelled = true;
              }
              stream_outcome("cancelled");
              return false;
            }
            l.lock();
          }
          if (up->finished) {
            // Never a silently truncated stream: an upstream that ended
            // without the closing marker failed, whatever the transport said.
            if (up->failed || !stream_closed(kind, *up)) {
              std::string why = up->failed ? up->error : "the stream ended early";
              spdlog::warn("stream from {} broke off: {}", where, why);
              std::string e = stream_error(kind, path, "the node serving this request (" + where +
                                                     ") failed mid-stream: " + why);
              l.unlock();
              sink.write(e.data(), e.size());
              stream_outcome("broken");
            } else {
              l.unlock();
              stream_outcome("answered");
            }
            sink.done();
          }
          return true;
        },
        [up](bool) {
          std::lock_guard g(up->mu);
          up->cancelled = true;
        });
    return;
  }
  std::string all;
  for (const auto& f : failures) all += (all.empty() ? "" : "; ") + f;
  throw Error(ErrorCode::kUnavailable, "no node could serve the request: " +
                                           (all.empty() ? std::string("no node hosts the model") : all));
}

}  // namespace tars::cluster
