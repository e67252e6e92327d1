// SchemaConstraint (json_schema.h): apart from json_schema.cpp, so that the
// schema compiler and reader need nothing of the tokenizer but its UTF-8
// helpers (the fuzz targets build them alone).
#include "engine/json_schema.h"
#include "engine/tokenizer.h"

namespace tars::engine {

SchemaConstraint::SchemaConstraint(const Tokenizer& tokenizer, std::shared_ptr<const JsonSchema> schema)
    : tokenizer_(tokenizer), pieces_(tokenizer.pieces()), state_(schema), trial_(schema) {}

bool SchemaConstraint::allows(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return false;
  if (tokenizer_.is_end_of_generation(id)) return state_.complete();
  const std::string& piece = pieces_[id];
  if (piece.empty()) return false;  // no progress (control and empty tokens)
  trial_.assign(state_);
  return trial_.push(piece);
}

void SchemaConstraint::accept(int32_t id) {
  if (id >= 0 && static_cast<size_t>(id) < pieces_.size() && !tokenizer_.is_end_of_generation(id)) {
    state_.push(pieces_[id]);
  }
}

}  // namespace tars::engine
