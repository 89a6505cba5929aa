package skiff

import (
	skiffpb "github.com/skiffkv/skiff/proto"
	"github.com/skiffkv/skiff/store"
)

// Conversions between the wire's KeyValue and the store's and API's.

func entryFromPB(kv *skiffpb.KeyValue) store.Entry {
	if kv == nil {
		return store.Entry{}
	}
	return store.Entry{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version}
}

func entryToPB(e store.Entry) *skiffpb.KeyValue {
	return &skiffpb.KeyValue{Key: e.Key, Value: e.Value, CreateRevision: e.CreateRevision, ModRevision: e.ModRevision, Version: e.Version}
}

func kvToPB(kv *KeyValue) *skiffpb.KeyValue {
	return &skiffpb.KeyValue{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version}
}

func kvFromPB(kv *skiffpb.KeyValue) *KeyValue {
	out := &KeyValue{Key: kv.GetKey(), Value: kv.GetValue(), CreateRevision: kv.GetCreateRevision(),
		ModRevision: kv.GetModRevision(), Version: kv.GetVersion()}
	if out.Value == nil {
		out.Value = []byte{}
	}
	return out
}
