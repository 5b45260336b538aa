// Package nn trains Shelf's neural models and is the only package that imports
// gorgonia.org/*. It owns graph construction, the VM lifecycle, negative
// sampling, the optimisers (lazy Adam for embedding rows, Adam for dense
// layers), early stopping and training checkpoints. Everything it returns is
// engine-free: model.RankingModel, []model.Dense and model.Weights.
//
// Embedding tables never enter the graph. Each step gathers the batch's user
// and item rows into fixed B×D input nodes, asks Gorgonia for the gradient
// with respect to those inputs and the MLP weights, and scatters the row
// gradients back with a sparse Adam update in Go. The cost per step is then
// proportional to the batch, not to the vocabulary.
//
// Gorgonia's Must helpers panic; exported functions recover and return errors.
package nn
