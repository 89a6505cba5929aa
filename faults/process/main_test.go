package process

import (
	"flag"
	"fmt"
	"os"
	"testing"
	"time"
)

var (
	flagSeed = flag.Int64("faults.seed", 0,
		"seed of the first run (0: one from the clock); with a seed and no -faults.runs, one run")
	flagRuns = flag.Int("faults.runs", 0,
		"seeded runs per tier, seeds counting up from -faults.seed (0: 2 with namespaces, 1 on loopback)")
	flagClass    = flag.String("faults.class", "", "run only this fault class (see classes)")
	flagDuration = flag.Duration("faults.duration", 8*time.Second, "how long faults are injected in each run")
	flagKeep     = flag.Bool("faults.keep", false, "keep every run's logs, data dirs and history, not only a failed run's")
	flagStats    = flag.String("faults.stats", "", "append one JSON line of figures per run to this file")
	flagMeasure  = flag.Bool("faults.measure", false, "run TestFailoverMeasurement")
	flagTrials   = flag.Int("faults.trials", 5, "measurement: trials per fault")
	flagTrial    = flag.Duration("faults.trialtimeout", 20*time.Second,
		"measurement: how long a trial waits for a write to succeed before it reports a timeout")
	flagWrite = flag.Duration("faults.writetimeout", 2*time.Second, "measurement: each write's deadline")
	flagStale = flag.Bool("faults.staleleader", false,
		"measurement: do not have the client learn the leader before each trial, so that after the first fault it "+
			"writes through whichever node it reaches")
)

// TestMain runs a child role when the test binary was started as a node
// or the client, and the tests otherwise.
func TestMain(m *testing.M) {
	switch role := os.Getenv(roleEnv); role {
	case "":
		os.Exit(m.Run())
	case "node":
		os.Exit(runNode())
	case "client":
		os.Exit(runClient())
	default:
		fmt.Fprintf(os.Stderr, "%s=%q: unknown role\n", roleEnv, role)
		os.Exit(2)
	}
}

// seeds returns the seeds of this invocation's runs.
func seeds(defaultRuns int) []int64 {
	first, runs := *flagSeed, *flagRuns
	switch {
	case runs == 0 && first != 0:
		runs = 1
	case runs == 0:
		runs = defaultRuns
	}
	if first == 0 {
		// Small positive seeds, easy to type back in.
		first = time.Now().UnixNano()%1_000_000 + 1
	}
	out := make([]int64, runs)
	for i := range out {
		out[i] = first + int64(i)
	}
	return out
}
