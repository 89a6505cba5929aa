package skiff_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/skiffkv/skiff"
)

// A node's operations endpoints: readiness, and metrics that count from
// the moment they are first asked for.
func ExampleNode_HTTPHandler() {
	dir, err := os.MkdirTemp("", "skiff-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := exampleConfig(dir)
	cfg.ID = "n1"
	ctx := context.Background()
	node, err := skiff.Open(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	if _, err := node.WaitForLeader(ctx); err != nil {
		log.Fatal(err)
	}
	// In a program: http.ListenAndServe("127.0.0.1:9400", h)
	h := node.HTTPHandler(skiff.HTTPOptions{})
	get := func(path string) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return fmt.Sprint(rec.Code, " ", rec.Body.String())
	}
	fmt.Print("/readyz: ", get("/readyz"))

	get("/metrics") // metrics start counting here
	if _, err := node.Put(ctx, "greeting", []byte("hello")); err != nil {
		log.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(get("/metrics")))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "skiff_writes_total") {
			fmt.Println(sc.Text())
		}
	}
	// Output:
	// /readyz: 200 ready
	// skiff_writes_total{kind="put",node="n1",outcome="ok"} 1
}
