// Package skiffpb holds the generated Go code for skiff's wire protocol.
// Regenerate with `go generate ./proto` (needs protoc, protoc-gen-go and
// protoc-gen-go-grpc at the versions pinned in .ci/run).
package skiffpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative skiff.proto
