package main

import (
	_ "github.com/Jille/raft-grpc-transport"
	_ "github.com/hashicorp/raft"
	_ "github.com/skiffkv/skiff"
	_ "go.etcd.io/etcd/client/v3"
	_ "go.etcd.io/etcd/server/v3/embed"
)

func main() {}
