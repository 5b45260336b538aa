//go:build race

package events

// raceEnabled: the race detector's instrumentation allocates on its own,
// so allocation bounds are not checked under it.
const raceEnabled = true
