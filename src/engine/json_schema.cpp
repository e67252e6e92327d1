#include "engine/json_schema.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"

namespace tars::engine {

using nlohmann::json;
using Kind = JsonSchema::Kind;
using Node = JsonSchema::Node;

// ---------------------------------------------------------------------------
// Compiling a schema
// ---------------------------------------------------------------------------

class SchemaCompiler {
 public:
  SchemaCompiler(const json& document, bool lenient) : doc_(document), lenient_(lenient) {}

  std::shared_ptr<const JsonSchema> run() {
    auto out = std::make_shared<JsonSchema>();
    out_ = out.get();
    out->root_ = build(doc_, "", 0);
    // The leaves of every node (anyOf flattened), refusing an anyOf or $ref
    // that reaches itself before any value begins.
    std::vector<uint8_t> state(out->nodes_.size(), 0);
    for (size_t i = 0; i < out->nodes_.size(); ++i) leaves(static_cast<int>(i), state);
    return out;
  }

 private:
  [[noreturn]] static void fail(const std::string& where, const std::string& what) {
    throw Error(ErrorCode::kInvalidArgument,
                "JSON schema at \"" + (where.empty() ? std::string("#") : "#" + where) + "\": " + what);
  }

  int add(Node n) {
    if (out_->nodes_.size() >= JsonSchema::kMaxNodes) {
      fail("", "is too large (more than " + std::to_string(JsonSchema::kMaxNodes) + " schemas in it)");
    }
    out_->nodes_.push_back(std::move(n));
    return static_cast<int>(out_->nodes_.size()) - 1;
  }

  // Any JSON value: one node for the whole schema.
  int any() {
    if (any_ >= 0) return any_;
    any_ = add(Node{});  // kAnyOf, filled below (it refers to itself)
    Node object;
    object.kind = Kind::kObject;
    object.additional = any_;
    Node array;
    array.kind = Kind::kArray;
    array.items = any_;
    Node string;
    string.kind = Kind::kString;
    Node number;
    number.kind = Kind::kNumber;
    Node literal;
    literal.kind = Kind::kLiteral;
    literal.literals = {"true", "false", "null"};
    std::vector<int> alternatives = {add(std::move(object)), add(std::move(array)), add(std::move(string)),
                                     add(std::move(number)), add(std::move(literal))};
    out_->nodes_[any_].alternatives = std::move(alternatives);
    return any_;
  }

  static std::string escape_pointer(const std::string& key) {
    std::string out;
    for (char c : key) {
      if (c == '~')
        out += "~0";
      else if (c == '/')
        out += "~1";
      else
        out += c;
    }
    return out;
  }

  static uint32_t count(const json& s, const char* key, const std::string& where) {
    const json& v = s[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > UINT32_MAX) {
      fail(where + "/" + key, "must be a non-negative integer, got " + v.dump());
    }
    return static_cast<uint32_t>(v.get<int64_t>());
  }

  static bool of_type(const json& v, const std::string& type) {
    if (type == "string") return v.is_string();
    if (type == "number") return v.is_number();
    if (type == "integer")
      return v.is_number_integer() || (v.is_number_float() && v.get<double>() == std::floor(v.get<double>()));
    if (type == "boolean") return v.is_boolean();
    if (type == "null") return v.is_null();
    if (type == "object") return v.is_object();
    if (type == "array") return v.is_array();
    return false;
  }

  int build(const json& s, const std::string& where, int depth) {
    if (depth > JsonSchema::kMaxNesting) fail(where, "is nested too deeply");
    if (s.is_boolean()) {
      if (s.get<bool>()) return any();
      fail(where, "is false: no value is valid");
    }
    if (!s.is_object()) fail(where, "must be an object or a boolean, got " + s.dump());
    static const char* const kRefused[] = {
        "pattern", "patternProperties", "propertyNames", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas",
        "dependencies", "contains", "minContains", "maxContains", "minProperties", "maxProperties",
        "unevaluatedProperties", "unevaluatedItems", "$dynamicRef", "$recursiveRef"};
    for (const char* k : kRefused) {
      if (s.contains(k) && !lenient_) {
        fail(where, std::string("\"") + k + "\" is not supported (it cannot be kept while the text is written)");
      }
    }
    if (s.contains("uniqueItems") && s["uniqueItems"] != false && !lenient_)
      fail(where, "\"uniqueItems\" is not supported");
    static const char* const kStructural[] = {"type",      "properties",  "required", "additionalProperties",
                                              "items",     "prefixItems", "minItems", "maxItems",
                                              "minLength", "maxLength",   "enum",     "const",
                                              "anyOf",     "oneOf",       "allOf",    "$ref"};
    auto others = [&](const char* self) {
      for (const char* k : kStructural) {
        if (std::string_view(k) != self && s.contains(k)) return std::string(k);
      }
      return std::string();
    };
    if (s.contains("$ref")) {
      if (auto o = others("$ref"); !o.empty()) fail(where, "\"$ref\" with \"" + o + "\" beside it is not supported");
      return ref(s["$ref"], where + "/$ref");
    }
    if (s.contains("allOf")) {
      const json& all = s["allOf"];
      if (!all.is_array() || all.size() != 1) fail(where + "/allOf", "is supported only with one schema");
      if (auto o = others("allOf"); !o.empty()) fail(where, "\"allOf\" with \"" + o + "\" beside it is not supported");
      return alias(build(all[0], where + "/allOf/0", depth + 1));
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s.contains(key)) continue;
      const json& alts = s[key];
      if (!alts.is_array() || alts.empty()) fail(where + "/" + key, "must be a non-empty array");
      for (const char* k : kStructural) {
        if (std::string_view(k) != key && s.contains(k)) {
          fail(where, std::string("\"") + key + "\" with \"" + k +
                          "\" beside it is not supported (put it in each alternative)");
        }
      }
      Node n;
      n.kind = Kind::kAnyOf;
      for (size_t i = 0; i < alts.size(); ++i) {
        n.alternatives.push_back(build(alts[i], where + "/" + key + "/" + std::to_string(i), depth + 1));
      }
      return add(std::move(n));
    }
    std::vector<std::string> types;
    if (s.contains("type")) {
      const json& t = s["type"];
      static const std::set<std::string> kTypes = {"string", "number", "integer", "boolean", "null", "object", "array"};
      auto check = [&](const json& v) {
        if (!v.is_string() || !kTypes.count(v.get<std::string>())) fail(where + "/type", "unknown type " + v.dump());
        if (std::find(types.begin(), types.end(), v.get<std::string>()) == types.end())
          types.push_back(v.get<std::string>());
      };
      if (t.is_array()) {
        if (t.empty()) fail(where + "/type", "is an empty list: no value is valid");
        for (const json& v : t) check(v);
      } else {
        check(t);
      }
    }
    if (s.contains("enum") || s.contains("const")) {
      if (s.contains("enum") && s.contains("const")) fail(where, "has both \"enum\" and \"const\"");
      const bool is_enum = s.contains("enum");
      const json values = is_enum ? s["enum"] : json::array({s["const"]});
      if (is_enum && (!s["enum"].is_array() || s["enum"].empty())) fail(where + "/enum", "must be a non-empty array");
      Node n;
      n.kind = Kind::kLiteral;
      for (const json& v : values) {
        const bool typed = types.empty() ||
                           std::any_of(types.begin(), types.end(), [&](const std::string& t) { return of_type(v, t); });
        if (!typed) continue;  // JSON Schema: the value would fail its "type"
        std::string text = v.dump();
        if (std::find(n.literals.begin(), n.literals.end(), text) == n.literals.end())
          n.literals.push_back(std::move(text));
      }
      if (n.literals.empty()) fail(where, "no value of \"enum\" or \"const\" has the schema's \"type\"");
      if (n.literals.size() > JsonSchema::kMaxLiterals) {
        fail(where + "/enum", "has more than " + std::to_string(JsonSchema::kMaxLiterals) + " values");
      }
      return add(std::move(n));
    }
    if (types.empty()) {
      // No type: what its keywords are about (those of other types do not
      // apply to a value, so a schema with none is any value).
      if (s.contains("properties") || s.contains("required") || s.contains("additionalProperties")) {
        types.push_back("object");
      } else if (s.contains("items") || s.contains("prefixItems") || s.contains("minItems") || s.contains("maxItems")) {
        types.push_back("array");
      } else if (s.contains("minLength") || s.contains("maxLength")) {
        types.push_back("string");
      } else {
        return any();
      }
    }
    if (types.size() == 1) return typed(s, types[0], where, depth);
    Node n;
    n.kind = Kind::kAnyOf;
    for (const auto& t : types) n.alternatives.push_back(typed(s, t, where, depth));
    return add(std::move(n));
  }

  int alias(int target) {
    Node n;
    n.kind = Kind::kAnyOf;
    n.alternatives = {target};
    return add(std::move(n));
  }

  int typed(const json& s, const std::string& type, const std::string& where, int depth) {
    Node n;
    if (type == "boolean" || type == "null") {
      n.kind = Kind::kLiteral;
      n.literals = type == "null" ? std::vector<std::string>{"null"} : std::vector<std::string>{"true", "false"};
      return add(std::move(n));
    }
    if (type == "number" || type == "integer") {
      n.kind = Kind::kNumber;
      n.integer = type == "integer";
      return add(std::move(n));
    }
    if (type == "string") {
      n.kind = Kind::kString;
      if (s.contains("minLength")) n.min_length = count(s, "minLength", where);
      if (s.contains("maxLength")) n.max_length = count(s, "maxLength", where);
      if (n.min_length > n.max_length) fail(where, "has minLength above maxLength");
      return add(std::move(n));
    }
    if (type == "array") {
      n.kind = Kind::kArray;
      if (s.contains("minItems")) n.min_items = count(s, "minItems", where);
      if (s.contains("maxItems")) n.max_items = count(s, "maxItems", where);
      if (n.min_items > n.max_items) fail(where, "has minItems above maxItems");
      if (s.contains("prefixItems")) {
        const json& p = s["prefixItems"];
        if (!p.is_array()) fail(where + "/prefixItems", "must be an array");
        for (size_t i = 0; i < p.size(); ++i) {
          n.prefix_items.push_back(build(p[i], where + "/prefixItems/" + std::to_string(i), depth + 1));
        }
      }
      if (s.contains("items") && s["items"] == false) {
        n.items = -1;
        if (n.min_items > n.prefix_items.size())
          fail(where, "has minItems above the number of prefixItems, with items false");
      } else if (s.contains("items")) {
        if (s["items"].is_array()) fail(where + "/items", "as an array is the old form: use prefixItems");
        n.items = build(s["items"], where + "/items", depth + 1);
      } else {
        n.items = any();
      }
      return add(std::move(n));
    }
    // object
    n.kind = Kind::kObject;
    if (s.contains("properties")) {
      const json& props = s["properties"];
      if (!props.is_object()) fail(where + "/properties", "must be an object");
      if (props.size() > JsonSchema::kMaxProperties) {
        fail(where + "/properties", "has more than " + std::to_string(JsonSchema::kMaxProperties) + " properties");
      }
      for (auto it = props.begin(); it != props.end(); ++it) {
        JsonSchema::Property p;
        const std::string quoted = json(it.key()).dump();
        p.key = quoted.substr(1, quoted.size() - 2);
        p.node = build(it.value(), where + "/properties/" + escape_pointer(it.key()), depth + 1);
        n.properties.push_back(std::move(p));
      }
    }
    if (s.contains("required")) {
      const json& req = s["required"];
      if (!req.is_array()) fail(where + "/required", "must be an array of property names");
      for (const json& name : req) {
        if (!name.is_string()) fail(where + "/required", "must be an array of property names, got " + name.dump());
        const std::string quoted = name.dump();
        const std::string key = quoted.substr(1, quoted.size() - 2);
        auto it = std::find_if(n.properties.begin(), n.properties.end(), [&](const auto& p) { return p.key == key; });
        if (it == n.properties.end()) fail(where + "/required", "names " + quoted + ", which is not in \"properties\"");
        n.required |= uint64_t{1} << (it - n.properties.begin());
      }
    }
    if (s.contains("additionalProperties")) {
      const json& a = s["additionalProperties"];
      if (a == false)
        n.additional = -1;
      else
        n.additional = build(a, where + "/additionalProperties", depth + 1);
    } else {
      n.additional = n.properties.empty() ? any() : -1;
    }
    return add(std::move(n));
  }

  // "#", "#/$defs/Name", "#/definitions/Name", any JSON pointer into the document.
  int ref(const json& r, const std::string& where) {
    if (!r.is_string()) fail(where, "must be a string");
    const std::string target = r.get<std::string>();
    if (target.empty() || target[0] != '#')
      fail(where, "\"" + target + "\": only references into the same schema (\"#...\") are supported");
    auto found = refs_.find(target);
    if (found != refs_.end()) return found->second;
    const json* found_schema = nullptr;
    try {
      const json::json_pointer pointer(target.substr(1));
      if (doc_.contains(pointer)) found_schema = &doc_.at(pointer);
    } catch (const json::exception&) {
      fail(where, "\"" + target + "\" is not a JSON pointer into the schema");
    }
    if (found_schema == nullptr) fail(where, "\"" + target + "\" names nothing in the schema");
    // The node is made before its schema is built, so that the schema may
    // refer to itself.
    const int self = add(Node{});
    refs_[target] = self;
    const int built = build(*found_schema, target.substr(1), 1);
    out_->nodes_[self].alternatives = {built};
    return self;
  }

  // 0: not visited, 1: in progress, 2: done.
  void leaves(int i, std::vector<uint8_t>& state) {
    if (state[i] == 2) return;
    Node& n = out_->nodes_[i];
    if (n.kind != Kind::kAnyOf) {
      n.leaves = {i};
      state[i] = 2;
      return;
    }
    if (state[i] == 1) fail("", "an anyOf or $ref refers to itself before any value begins");
    state[i] = 1;
    std::vector<int> out;
    for (int a : std::vector<int>(n.alternatives)) {
      leaves(a, state);
      for (int l : out_->nodes_[a].leaves) {
        if (std::find(out.begin(), out.end(), l) == out.end()) out.push_back(l);
      }
      if (out.size() > JsonSchema::kMaxAlternatives) {
        fail("", "an anyOf has more than " + std::to_string(JsonSchema::kMaxAlternatives) +
                     " alternatives (nested anyOf and $refs counted)");
      }
    }
    out_->nodes_[i].leaves = std::move(out);
    state[i] = 2;
  }

  const json& doc_;
  const bool lenient_;
  JsonSchema* out_ = nullptr;
  int any_ = -1;
  std::map<std::string, int> refs_;
};

std::shared_ptr<const JsonSchema> JsonSchema::parse(std::string_view text, bool lenient) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e999
    throw Error(ErrorCode::kInvalidArgument, std::string("JSON schema: not JSON: ") + e.what());
  }
  return SchemaCompiler(doc, lenient).run();
}

// ---------------------------------------------------------------------------
// Reading text against it
// ---------------------------------------------------------------------------

namespace {

enum Phase : uint8_t {
  kPending,   // a value of the node comes (blanks first)
  kObjStart,  // '{'
  kObjOpen,   // after '{': a key or '}'
  kObjNext,   // after ',': a key
  kObjKey,    // in a key
  kObjColon,  // after a key
  kObjValue,  // the value is the frame above
  kObjAfter,  // ',' or '}'
  kArrStart,  // '['
  kArrOpen,   // after '[': an item or ']'
  kArrValue,  // the item is the frame above
  kArrAfter,  // ',' or ']'
  kStrStart,  // '"'
  kStr,       // in the string
  kNumStart,  // '-' or a digit
  kNum,       // in the number
  kLit,       // in an enum / const / literal text
};

using json_lex::blank;

bool structural(uint8_t phase) {
  return phase == kPending || phase == kObjOpen || phase == kObjNext || phase == kObjColon || phase == kObjAfter ||
         phase == kArrOpen || phase == kArrAfter;
}
uint64_t low_bits(size_t n) { return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1; }

}  // namespace

SchemaPrefix::SchemaPrefix(std::shared_ptr<const JsonSchema> schema)
    : schema_(std::move(schema)), nodes_(&schema_->nodes()) {
  Reading r;
  r.frames.push_back(Frame{.node = schema_->root(), .phase = kPending});
  forks_.push_back(std::move(r));
}

void SchemaPrefix::assign(const SchemaPrefix& other) {
  schema_ = other.schema_;
  nodes_ = other.nodes_;
  forks_.resize(other.forks_.size());
  for (size_t i = 0; i < forks_.size(); ++i) forks_[i] = other.forks_[i];  // reuses each frame vector
}

bool SchemaPrefix::push(std::string_view bytes) {
  for (char c : bytes) {
    if (!push(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool SchemaPrefix::push(unsigned char c) {
  next_.clear();
  for (Reading& r : forks_) feed(std::move(r), c);
  // Readings that became the same are one.
  for (size_t i = 0; i < next_.size(); ++i) {
    for (size_t j = next_.size(); j-- > i + 1;) {
      if (next_[j] == next_[i]) next_.erase(next_.begin() + static_cast<std::ptrdiff_t>(j));
    }
  }
  if (next_.size() > kMaxForks) next_.resize(kMaxForks);
  forks_.swap(next_);
  return !forks_.empty();
}

int SchemaPrefix::item_node(const Node& n, uint32_t index) const {
  if (index >= n.max_items) return -1;
  if (index < n.prefix_items.size()) return n.prefix_items[index];
  return n.items;
}

bool SchemaPrefix::start_child(Reading& r, int node) const {
  if (r.frames.size() >= static_cast<size_t>(kMaxDepth)) return false;
  r.frames.push_back(Frame{.node = node, .phase = kPending});
  return true;
}

bool SchemaPrefix::finish(Reading& r) const {
  r.frames.pop_back();
  if (r.frames.empty()) return true;
  Frame& parent = r.frames.back();
  if (parent.phase == kObjValue) {
    parent.phase = kObjAfter;
  } else {  // kArrValue
    parent.phase = kArrAfter;
    ++parent.count;
  }
  return true;
}

void SchemaPrefix::feed(Reading r, unsigned char c) {
  const std::vector<Node>& nodes = *nodes_;
  for (;;) {
    if (r.frames.empty()) return;  // nothing may follow the value
    Frame& f = r.frames.back();
    const Node& n = nodes[f.node];
    if (structural(f.phase)) {
      if (blank(c)) {
        if (f.phase == kPending && r.frames.size() == 1) return;  // the text begins with the value
        if (r.blanks.push(c)) next_.push_back(std::move(r));
        return;
      }
      r.blanks.reset();
    }
    switch (f.phase) {
      case kPending:
        // Each kind of value this may be is a reading of its own; those the
        // byte cannot begin are dropped at once.
        for (size_t i = 0; i < n.leaves.size(); ++i) {
          const int leaf = n.leaves[i];
          Reading t;
          if (i + 1 == n.leaves.size())
            t = std::move(r);
          else
            t = r;
          Frame& top = t.frames.back();
          top = Frame{.node = leaf};
          switch (nodes[leaf].kind) {
            case Kind::kObject:
              top.phase = kObjStart;
              break;
            case Kind::kArray:
              top.phase = kArrStart;
              break;
            case Kind::kString:
              top.phase = kStrStart;
              break;
            case Kind::kNumber:
              top.phase = kNumStart;
              break;
            default:
              top.phase = kLit;
              top.cand = low_bits(nodes[leaf].literals.size());
              break;
          }
          feed(std::move(t), c);
        }
        return;
      case kObjStart:
        if (c != '{') return;
        f.phase = kObjOpen;
        break;
      case kObjOpen:
      case kObjNext:
        if (c == '}' && f.phase == kObjOpen) {
          if (n.required != 0) return;
          finish(r);
          break;
        }
        if (c != '"') return;
        // A key must be possible: another one, or a property not given yet.
        if (n.additional < 0 && (low_bits(n.properties.size()) & ~f.seen) == 0) return;
        f.phase = kObjKey;
        f.cand = low_bits(n.properties.size());
        f.count = 0;
        r.string.reset();
        break;
      case kObjKey: {
        const int kind = r.string.push(c);
        if (kind == json_lex::StringBody::kBad) return;
        if (kind == json_lex::StringBody::kEnd) {
          int prop = -1;
          for (size_t i = 0; i < n.properties.size(); ++i) {
            if ((f.cand >> i & 1) && n.properties[i].key.size() == f.count) prop = static_cast<int>(i);
          }
          if (prop >= 0) {
            if (f.seen >> prop & 1) return;  // given already
            f.seen |= uint64_t{1} << prop;
          } else if (n.additional < 0) {
            return;
          }
          f.prop = static_cast<int16_t>(prop);
          f.phase = kObjColon;
          break;
        }
        uint64_t cand = 0;
        for (size_t i = 0; i < n.properties.size(); ++i) {
          const std::string& key = n.properties[i].key;
          if ((f.cand >> i & 1) && key.size() > f.count && static_cast<unsigned char>(key[f.count]) == c) {
            cand |= uint64_t{1} << i;
          }
        }
        // Without other keys, some property not given yet must still match.
        if (n.additional < 0 && (cand & ~f.seen) == 0) return;
        f.cand = cand;
        ++f.count;
        break;
      }
      case kObjColon: {
        if (c != ':') return;
        f.phase = kObjValue;
        const int child = f.prop >= 0 ? n.properties[f.prop].node : n.additional;
        if (!start_child(r, child)) return;
        break;
      }
      case kObjAfter:
        if (c == ',') {
          const bool more = n.additional >= 0 || (low_bits(n.properties.size()) & ~f.seen) != 0;
          if (!more) return;
          f.phase = kObjNext;
          break;
        }
        if (c != '}' || (n.required & ~f.seen) != 0) return;
        finish(r);
        break;
      case kArrStart:
        if (c != '[') return;
        f.phase = kArrOpen;
        break;
      case kArrOpen:
      case kArrAfter: {
        if (c == ']') {
          if (f.count < n.min_items) return;
          finish(r);
          break;
        }
        const int item = item_node(n, f.count);
        if (item < 0) return;
        if (f.phase == kArrAfter) {
          if (c != ',') return;
          f.phase = kArrValue;
          if (!start_child(r, item)) return;
          break;
        }
        f.phase = kArrValue;
        if (!start_child(r, item)) return;
        continue;  // c begins the first item
      }
      case kStrStart:
        if (c != '"') return;
        f.phase = kStr;
        f.count = 0;
        r.string.reset();
        break;
      case kStr: {
        if (r.string.between_characters() && c != '"' && f.count >= n.max_length) return;  // only the end may come
        const int kind = r.string.push(c);
        if (kind == json_lex::StringBody::kBad) return;
        if (kind == json_lex::StringBody::kEnd) {
          if (f.count < n.min_length) return;
          finish(r);
          break;
        }
        if (kind == json_lex::StringBody::kChar) ++f.count;
        break;
      }
      case kNumStart:
        if (!r.number.start(c)) return;
        f.phase = kNum;
        break;
      case kNum:
        switch (r.number.push(c, n.integer)) {
          case json_lex::Number::kBad:
            return;
          case json_lex::Number::kMore:
            break;
          case json_lex::Number::kEnded:
            finish(r);
            continue;  // c comes after the number
        }
        break;
      case kLit: {
        uint64_t cand = 0;
        bool exact = false;
        for (size_t i = 0; i < n.literals.size(); ++i) {
          if (!(f.cand >> i & 1)) continue;
          const std::string& text = n.literals[i];
          if (text.size() == f.count) exact = true;
          if (text.size() > f.count && static_cast<unsigned char>(text[f.count]) == c) cand |= uint64_t{1} << i;
        }
        if (cand == 0) {
          if (!exact) return;
          finish(r);
          continue;  // the text ended (a number of an enum); c comes after it
        }
        f.cand = cand;
        ++f.count;
        // Ended, with nothing longer possible: the value is complete.
        bool longer = false;
        bool whole = false;
        for (size_t i = 0; i < n.literals.size(); ++i) {
          if (!(cand >> i & 1)) continue;
          if (n.literals[i].size() == f.count) whole = true;
          if (n.literals[i].size() > f.count) longer = true;
        }
        if (whole && !longer) finish(r);
        break;
      }
      default:
        return;  // kObjValue, kArrValue: never on top
    }
    next_.push_back(std::move(r));
    return;
  }
}

bool SchemaPrefix::can_end(const Reading& r) const {
  if (r.frames.empty()) return true;
  if (r.frames.size() != 1) return false;
  const Frame& f = r.frames.back();
  if (f.phase == kNum) return r.number.may_end();
  if (f.phase == kLit) {
    const Node& n = (*nodes_)[f.node];
    for (size_t i = 0; i < n.literals.size(); ++i) {
      if ((f.cand >> i & 1) && n.literals[i].size() == f.count) return true;
    }
  }
  return false;
}

bool SchemaPrefix::complete() const {
  return std::any_of(forks_.begin(), forks_.end(), [this](const Reading& r) { return can_end(r); });
}

}  // namespace tars::engine
