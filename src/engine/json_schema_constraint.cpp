// SchemaConstraint (json_schema.h): apart from json_schema.cpp, so that the
// schema compiler and reader need nothing of the tokenizer but its UTF-8
// helpers (the fuzz targets build them alone).
#include "engine/json_schema.h"

#include <utility>

#include "engine/tokenizer.h"

namespace tars::engine {

SchemaConstraint::SchemaConstraint(const Tokenizer& tokenizer, std::shared_ptr<const JsonSchema> schema,
                                   std::string before, std::string after)
    : tokenizer_(tokenizer),
      pieces_(tokenizer.pieces()),
      before_text_(std::move(before)),
      after_text_(std::move(after)),
      state_(schema),
      trial_(schema) {}

bool SchemaConstraint::advance(SchemaPrefix& value, size_t& before, size_t& after, std::string_view bytes) const {
  for (char c : bytes) {
    if (before < before_text_.size()) {
      if (c != before_text_[before]) return false;
      ++before;
    } else if (after_text_.empty() || (after == 0 && !value.complete())) {
      if (!value.push(static_cast<unsigned char>(c))) return false;
    } else {
      if (after >= after_text_.size() || c != after_text_[after]) return false;
      ++after;
    }
  }
  return true;
}

bool SchemaConstraint::complete() const {
  return before_ == before_text_.size() && state_.complete() && after_ == after_text_.size();
}

bool SchemaConstraint::allows(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return false;
  if (tokenizer_.is_end_of_generation(id)) return complete();
  const std::string& piece = pieces_[id];
  if (piece.empty()) return false;  // no progress (control and empty tokens)
  trial_.assign(state_);
  size_t before = before_, after = after_;
  return advance(trial_, before, after, piece);
}

void SchemaConstraint::accept(int32_t id) {
  if (id >= 0 && static_cast<size_t>(id) < pieces_.size() && !tokenizer_.is_end_of_generation(id)) {
    advance(state_, before_, after_, pieces_[id]);
  }
}

}  // namespace tars::engine
