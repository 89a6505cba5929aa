package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/skiffkv/skiff"
)

// output writes results: for people by default, and with --json one JSON
// object per line and per result (a watch: one per event), so that a
// script can read results as they come with a line-by-line JSON reader.
type output struct {
	w    io.Writer
	json bool
}

// emit writes one result: obj as a JSON line, or what human writes.
func (o *output) emit(obj any, human func(w io.Writer)) error {
	if !o.json {
		human(o.w)
		return nil
	}
	enc := json.NewEncoder(o.w)
	enc.SetEscapeHTML(false) // keys and values are data, not HTML
	if err := enc.Encode(obj); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// table returns a writer that aligns tab-separated columns; flush it.
func table(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// jsonValue is a value in JSON: a string when it is valid UTF-8 text, and
// base64 otherwise, so that binary values survive the trip.
type jsonValue struct {
	Value       *string `json:"value,omitempty"`
	ValueBase64 string  `json:"value_base64,omitempty"`
}

func valueJSON(v []byte) jsonValue {
	if v == nil {
		return jsonValue{}
	}
	if utf8.Valid(v) {
		s := string(v)
		return jsonValue{Value: &s}
	}
	return jsonValue{ValueBase64: base64.StdEncoding.EncodeToString(v)}
}

// jsonKV is a key in JSON output.
type jsonKV struct {
	Key string `json:"key"`
	jsonValue
	CreateRevision uint64 `json:"create_revision,omitempty"`
	ModRevision    uint64 `json:"mod_revision,omitempty"`
	Version        uint64 `json:"version,omitempty"`
}

func kvJSON(kv skiff.KeyValue, withValue bool) jsonKV {
	out := jsonKV{Key: kv.Key, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version}
	if withValue {
		out.jsonValue = valueJSON(kv.Value)
		if kv.Value == nil {
			out.jsonValue = valueJSON([]byte{})
		}
	}
	return out
}

// printable renders a value on one line for people: as it is when it is
// text without control characters, quoted in Go syntax otherwise (so
// newlines and binary bytes cannot break the listing's lines).
func printable(v []byte) string {
	if !utf8.Valid(v) {
		return strconv.Quote(string(v))
	}
	for _, r := range string(v) {
		if unicode.IsControl(r) || !unicode.IsPrint(r) && r != ' ' {
			return strconv.Quote(string(v))
		}
	}
	return string(v)
}

// printableKey renders a key for people. Keys are printable by the key
// rules, but a name read from a file (inspect) need not be.
func printableKey(k string) string { return printable([]byte(k)) }
