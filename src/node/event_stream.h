#pragma once
// A streamed reply whose shape an API decides (OpenAI's chat and
// completions, Ollama's, Anthropic's Messages, OpenAI's Responses,
// llama-server's /completion): the API's EventWriter turns the
// generation's events into the text to send; reply_event_stream does the
// rest, the same for every such API: sending as the tokens come, noticing a
// client that has gone (the generation is cancelled, its slot freed), and
// ending with the writer's closing events or its failure event, never a
// silently cut stream.

#include <memory>
#include <string>

#include "node/generation.h"
#include "node/http_server.h"

namespace tars::node {

class EventWriter {
 public:
  virtual ~EventWriter() = default;
  // The events before the first token.
  virtual std::string start(const Generation& g) = 0;
  // A token's text and thought (either may be empty).
  virtual std::string token(const Generation::Event& e) = 0;
  // The closing events of a generation that ended well.
  virtual std::string finish(const Generation::Event& done) = 0;
  // The last event of a generation that failed.
  virtual std::string failure(const std::string& error) = 0;
};

// Answers 200 with `content_type` (server-sent events; Ollama's stream is
// JSON lines), written by `writer` as `g` runs.
void reply_event_stream(httplib::Response& res, std::shared_ptr<Generation> g, std::shared_ptr<EventWriter> writer,
                        const char* content_type = "text/event-stream");

}  // namespace tars::node
