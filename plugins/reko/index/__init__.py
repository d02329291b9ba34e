"""The OpenSearch side: index templates, documents with deterministic ids, segments, bulk loading."""
