package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/skiffkv/skiff/faults"
)

// runStats is one run's figures, written to -faults.stats as a JSON line.
type runStats struct {
	Tier    string `json:"tier"` // "netns" or "loopback"
	Seed    int64  `json:"seed"`
	Class   string `json:"class"`
	Store   string `json:"store"`
	Nodes   int    `json:"nodes"`
	Faults  int    `json:"faults"` // episodes injected
	Ops     int    `json:"ops"`
	OK      int    `json:"ok"`
	Failed  int    `json:"failed"`
	Unknown int    `json:"unknown"`
	// Violations counts the broken invariants; LostFinal those that are
	// acknowledged writes the final state does not explain.
	Violations int `json:"violations"`
	LostFinal  int `json:"lost_final"`
	// LostReads counts the acknowledged writes a later read shows lost
	// (faults.LostWrites).
	LostReads int `json:"lost_reads"`
	// Linearizable is "ok", "violation", "timeout" (the search gave up)
	// or "" when the run ended before the check.
	Linearizable   string  `json:"linearizable"`
	CheckSecs      float64 `json:"check_s"`
	WriteAfterHeal float64 `json:"write_after_heal_s"`
	RunSecs        float64 `json:"run_s"`
	TestFailed     bool    `json:"test_failed"`
}

// record fills in what the checks of a run found.
func (s *runStats) record(ops []faults.Op, vs []violation, h historyResult, writeAfter time.Duration) {
	s.Ops = len(ops)
	for _, op := range ops {
		switch op.Outcome {
		case faults.OK:
			s.OK++
		case faults.Failed:
			s.Failed++
		case faults.Unknown:
			s.Unknown++
		}
	}
	s.Violations = len(vs)
	for _, v := range vs {
		if v.lost {
			s.LostFinal++
		}
	}
	s.LostReads = len(h.lost)
	switch {
	case h.err == nil:
		s.Linearizable = "ok"
	case errors.Is(h.err, faults.ErrCheckTimeout):
		s.Linearizable = "timeout"
	default:
		s.Linearizable = "violation"
	}
	s.CheckSecs = h.took.Seconds()
	s.WriteAfterHeal = writeAfter.Seconds()
}

var statsMu sync.Mutex

// writeStats appends s to the -faults.stats file, if one was asked for.
func writeStats(t testing.TB, s *runStats) {
	t.Helper()
	if *flagStats == "" {
		return
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Errorf("stats: %v", err)
		return
	}
	statsMu.Lock()
	defer statsMu.Unlock()
	f, err := os.OpenFile(*flagStats, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("stats: %v", err)
		return
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, string(b)); err != nil {
		t.Errorf("stats: %v", err)
	}
}
