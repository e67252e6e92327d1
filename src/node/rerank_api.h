#pragma once
// Reranking: scoring documents against a query with a cross-encoder (a
// model of role "rerank"), as llama-server, Jina and Cohere
// (POST /v1/rerank, /v1/reranking, /rerank, /reranking) and
// text-embeddings-inference (POST /rerank with "texts") answer it.
//
// llama-server / Jina / Cohere shape:
//   {"model", "query", "documents": [string | {"text"}], "top_n", "return_documents", "truncate"}
//   -> {"model", "object": "list", "usage": {"prompt_tokens", "total_tokens"},
//       "results": [{"index", "relevance_score", "document": {"text"}?}]}
// text-embeddings-inference shape (POST /rerank whose body has "texts"):
//   {"query", "texts", "raw_scores", "return_text", "truncate", "truncation_direction"}
//   -> [{"index", "score", "text"?}]
// Results are sorted best first (ties in document order). relevance_score
// is the model's raw score (a logit), as llama-server gives it; TEI's score
// is its sigmoid unless raw_scores is true, as TEI does.

#include <vector>

#include "node/http_server.h"

namespace tars::node {

class ModelHost;

std::vector<Route> rerank_routes(ModelHost& host);

}  // namespace tars::node
