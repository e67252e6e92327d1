#include "node/event_stream.h"

namespace tars::node {

void reply_event_stream(httplib::Response& res, std::shared_ptr<Generation> g, std::shared_ptr<EventWriter> writer,
                        const char* content_type) {
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  auto started = std::make_shared<bool>(false);
  res.set_chunked_content_provider(
      content_type,
      [g, writer, started](size_t, httplib::DataSink& sink) {
        auto send = [&](const std::string& s) {
          if (s.empty() || sink.write(s.data(), s.size())) return true;
          g->cancel();  // the client disconnected: free the slot
          return false;
        };
        if (!*started) {
          *started = true;
          if (!send(writer->start(*g))) return false;
        }
        auto events = g->wait(200);
        if (events.empty() && !sink.is_writable()) {  // client gone while nothing to send
          g->cancel();
          return false;
        }
        for (auto& e : events) {
          if (!e.done) {
            if (!send(writer->token(e))) return false;
            continue;
          }
          send(e.error.empty() ? writer->finish(e) : writer->failure(e.error));
          sink.done();
          return true;
        }
        return true;
      },
      [g](bool) {
        if (!g->finished()) g->cancel();
      });
}

}  // namespace tars::node
