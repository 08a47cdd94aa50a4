//go:build race

package trace

// raceEnabled: the race detector makes the side-by-side pipeline test
// about ten times slower, so it runs its short form.
const raceEnabled = true
