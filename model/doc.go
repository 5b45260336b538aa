// Package model owns Shelf's engine-free types: dense id vocabularies, the
// ingested interaction log, CSR matrices, named float32 weights and their file
// format, ranking metrics, top-K selection, the baselines (popularity, ItemKNN)
// and the inference-side scorers. It never imports Gorgonia: weights produced
// by model/nn are plain named []float32 tensors that outlive the engine.
package model
