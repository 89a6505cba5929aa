// Package faults is skiff's fault suite: it runs a workload against a
// cluster while faults are injected, records every operation, and checks
// the history for linearizability and lost writes.
//
// The suite has two tiers, both seeded (a failing run prints its seed and
// the command that reproduces it) and both run on both log stores:
//
//   - the in-process tier, on skifftest clusters with a fault-injecting
//     network;
//   - the process tier, where every node is an OS process in a network
//     namespace of its own.
//
// This package holds what both share: the operation record
// (history.go), the workload that produces it (workload.go), the
// linearizability checker (check.go, over the model in model.go), the
// check of a healed cluster (check.go) and the watch recorder and its
// check (watch.go). The in-process tier is TestInProcess.
package faults
