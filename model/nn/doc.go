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
// The graph's layers, logit and loss are ops of this package (ops.go) with
// their gradients given to Gorgonia's symbolic differentiation: fused, kept
// buffers, on internal/f32's kernels. A step's batch is split into Shards
// equal shares, each with its own graph, run by Workers goroutines; their
// dense gradients are summed in shard order and every embedding row's
// gradient in batch order, so a fixed seed and shard count give the same
// model whatever the number of workers (or cores).
//
// The sequence encoder's ops (seqops.go: layer norm, causal multi-head
// attention with padding, the next-item loss) and its training graph
// (seqgraph.go) follow the same pattern; they are not yet trained or used
// by the pipeline.
//
// Gorgonia's Must helpers panic; exported functions recover and return errors.
package nn
