// Command testsummary reads the event stream of go test -json on stdin and
// prints what a person needs of it: each package's ok/FAIL line, the output
// of failed tests and of builds that failed, and the counts. scripts/test.sh
// pipes every go test through it and ends with its total.
//
//	go test -json ./... | testsummary -counts FILE   # append "passed failed" to FILE
//	testsummary -total FILE                          # print "N passed, N failed"
//
// A test counts once, by its innermost result: a test with subtests counts
// through them. A package that fails with no failed test (a build error, a
// panic outside tests, a timeout) counts as one failure. The exit status is 1
// when something failed.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is one line of go test -json (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output, build-fail
}

// counts are the results of one stream.
type counts struct{ passed, failed int }

func main() {
	countsFile := flag.String("counts", "", "append this stream's \"passed failed\" counts to `FILE`")
	total := flag.String("total", "", "print the sum of the counts in `FILE` and exit")
	flag.Parse()
	if *total != "" {
		c, err := readTotal(*total)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(2)
		}
		fmt.Printf("%d passed, %d failed\n", c.passed, c.failed)
		if c.failed > 0 {
			os.Exit(1)
		}
		return
	}
	c, err := summarize(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if *countsFile != "" {
		f, err := os.OpenFile(*countsFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = fmt.Fprintf(f, "%d %d\n", c.passed, c.failed)
			err = errorsJoin(err, f.Close())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(2)
		}
	}
	if c.failed > 0 {
		os.Exit(1)
	}
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// summarize copies the interesting part of the stream r to w and counts.
func summarize(r io.Reader, w io.Writer) (counts, error) {
	type key struct{ pkg, test string }
	output := map[key][]string{}   // output of tests without a result yet
	results := map[key]string{}    // pass, fail or skip
	pkgFailed := map[string]bool{} // packages with a fail event
	var order []key
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not an event (go test writes some errors as plain text).
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "build-output":
			io.WriteString(w, e.Output)
		case "output":
			if e.Test == "" {
				// Package lines: "ok  pkg 0.1s", "FAIL pkg", "? pkg [no test files]",
				// and what the test binary printed outside tests.
				if t := strings.TrimSpace(e.Output); t != "PASS" && t != "FAIL" && !strings.HasPrefix(t, "=== ") {
					io.WriteString(w, e.Output)
				}
				continue
			}
			output[k] = append(output[k], e.Output)
		case "pass", "skip":
			if e.Test != "" {
				results[k] = e.Action
				order = append(order, k)
				delete(output, k)
			}
		case "fail":
			if e.Test == "" {
				pkgFailed[e.Package] = true
				// Tests that never finished (a panic, a timeout) explain it.
				for ok, out := range output {
					if ok.pkg == e.Package {
						io.WriteString(w, strings.Join(out, ""))
						delete(output, ok)
					}
				}
				continue
			}
			results[k] = "fail"
			order = append(order, k)
			io.WriteString(w, strings.Join(output[k], ""))
			delete(output, k)
		}
	}
	if err := sc.Err(); err != nil {
		return counts{}, err
	}
	// A test whose subtests have results counts through them.
	parent := map[key]bool{}
	for _, k := range order {
		for i := strings.LastIndex(k.test, "/"); i > 0; i = strings.LastIndex(k.test[:i], "/") {
			parent[key{k.pkg, k.test[:i]}] = true
		}
	}
	var c counts
	failedIn := map[string]bool{}
	for _, k := range order {
		if parent[k] {
			continue
		}
		switch results[k] {
		case "pass":
			c.passed++
		case "fail":
			c.failed++
			failedIn[k.pkg] = true
		}
	}
	for pkg := range pkgFailed {
		if !failedIn[pkg] {
			c.failed++
		}
	}
	return c, nil
}

// readTotal sums the "passed failed" lines of file.
func readTotal(file string) (counts, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return counts{}, err
	}
	var c counts
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var p, f int
		if _, err := fmt.Sscanf(line, "%d %d", &p, &f); err != nil {
			return counts{}, fmt.Errorf("%s: bad line %q", file, line)
		}
		c.passed += p
		c.failed += f
	}
	return c, nil
}
