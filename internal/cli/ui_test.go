package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/ui"
)

// TestUIOperates: lfsm ui on a local store lists its executions, and its
// stop and send requests do what lfsm stop and send do to the store.
func TestUIOperates(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "fsm.yaml")
	if err := os.WriteFile(spec, []byte(startSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "s.db")
	ios, _, out, _ := TestIOStreams()
	if err := runStart(t.Context(), &StartOptions{IO: ios, WorkDir: dir, File: spec, DB: db, Machine: "M", Count: 2, Output: outputText}); err != nil {
		t.Fatal(err)
	}
	started := strings.Fields(out.String())
	out.Reset()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runUI(ctx, &UIOptions{IO: ios, File: spec, DB: db, Addr: "127.0.0.1:0", Ready: func(u string) { ready <- u }})
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("lfsm ui: %v", err)
	}
	if !strings.Contains(out.String(), "serving "+db+" on "+base) {
		t.Errorf("printed %q, want the URL %s", out.String(), base)
	}
	page := fetch(t, "GET", base, "", "")
	token := regexp.MustCompile(`name="lfsm-token" content="([0-9a-f]+)"`).FindStringSubmatch(page)
	if token == nil {
		t.Fatalf("no token in the page: %s", page)
	}
	var list ui.ExecutionsResult
	if err := json.Unmarshal([]byte(fetch(t, "GET", base+"api/executions", "", "")), &list); err != nil || len(list.Executions) != 2 {
		t.Fatalf("executions: %+v %v", list, err)
	}
	fetch(t, "POST", base+"api/executions/"+started[0]+"/stop", "", token[1])

	cancel()
	<-done
	s, err := openStore(t.Context(), db, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if x, err := s.Get(t.Context(), started[0]); err != nil || x.Status != engine.StatusStopped {
		t.Errorf("after the console's stop: %s %v", x.Status, err)
	}
	if x, _ := s.Get(t.Context(), started[1]); x.Status != engine.StatusRunning {
		t.Errorf("the other execution: %s", x.Status)
	}
}

func fetch(t *testing.T, method, u, body, token string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set(ui.TokenHeader, token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, u, resp.StatusCode, b)
	}
	return string(b)
}

func TestUIAddr(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:0": true, "localhost:80": true, "[::1]:7780": true, "0.0.0.0:7780": false, "192.0.2.1:80": false, ":7780": false} {
		got, err := loopbackAddr(addr)
		if err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", addr, got, err, want)
		}
	}
	if _, err := loopbackAddr("7780"); err == nil {
		t.Error("7780: no error")
	}
}
