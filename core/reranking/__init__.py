"""Cross-encoder rerankers: load, fine-tune, evaluate retrieve → rerank, fuse with the first stage.

No database and no web framework here (an ML package); heavy imports stay in the modules that
need them.
"""
