// Package testkit holds what skiff's tests in several packages share:
// polling for a condition, a buffer safe for concurrent writers, and
// reading samples out of a Prometheus scrape.
package testkit

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Eventually polls cond until it returns nil, and fails t with cond's
// last error if d passes first.
func Eventually(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	t.Fatalf("condition not met within %v: %v", d, err)
}

// SyncBuffer is a bytes.Buffer that a process or goroutine writes while
// the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Scrape is one /metrics answer in Prometheus' text format.
type Scrape string

// Value returns the sample of metric name whose labels include every
// name, value pair in labels, and whether there is one.
func (s Scrape) Value(name string, labels ...string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(string(s)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		metric, set, _ := strings.Cut(line[:i], "{")
		if metric != name || !hasLabels(set, labels) {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		return v, err == nil
	}
	return 0, false
}

func hasLabels(set string, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		if !strings.Contains(set, fmt.Sprintf("%s=%q", labels[i], labels[i+1])) {
			return false
		}
	}
	return true
}

// Must is Value, failing t when the scrape has no such sample.
func (s Scrape) Must(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, ok := s.Value(name, labels...)
	if !ok {
		t.Fatalf("no sample %s%q in the scrape:\n%s", name, labels, s)
	}
	return v
}
