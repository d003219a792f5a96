"""The edgecc conformance zoo: real architectures and packaged pretrained models, built or fetched by this
project's own files, run through edgecc's CLI stage by stage and checked against references from each model's
original runtime by this package's own comparison (edgecc's verifier is under test, so it is not used here)."""
