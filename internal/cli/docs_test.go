package cli

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsCommandsParse keeps the docs true to the command line: every lfsm
// command shown in a code block of README.md or docs/*.md must name a real
// command, with flags it has and an argument count it accepts. (What the
// commands then print is tested by the testscripts.)
func TestDocsCommandsParse(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "..", "README.md"))
	checked := 0
	for _, file := range files {
		for _, ex := range docCommands(t, file) {
			f, _ := testFactory(t, nil)
			root := NewRootCmd(f)
			cmd, rest, err := root.Find(ex.args)
			if err != nil || cmd == root {
				t.Errorf("%s:%d: %q: no such command", ex.file, ex.line, ex.text)
				continue
			}
			if err := cmd.ParseFlags(rest); err != nil {
				t.Errorf("%s:%d: %q: %v", ex.file, ex.line, ex.text, err)
				continue
			}
			if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
				t.Errorf("%s:%d: %q: %v", ex.file, ex.line, ex.text, err)
			}
			checked++
		}
	}
	if checked < 20 {
		t.Errorf("only %d documented commands found; the extraction is broken", checked)
	}
}

type docCommand struct {
	file, text string
	line       int
	args       []string
}

// docCommands returns the lfsm invocations in the fenced code blocks of file:
// lines starting with "lfsm " or "$ lfsm ", each piece of a && chain, up to a
// pipe, redirection or comment. Synopsis lines (with [optional] parts or
// upper-case placeholders such as MACHINE) are skipped.
func docCommands(t *testing.T, file string) []docCommand {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []docCommand
	inBlock, continued := false, ""
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "```") {
			inBlock, continued = !inBlock, ""
			continue
		}
		if !inBlock {
			continue
		}
		if continued != "" {
			line, continued = continued+" "+line, ""
		}
		if strings.HasSuffix(line, "\\") {
			continued = strings.TrimSuffix(line, "\\")
			continue
		}
		line = strings.TrimPrefix(line, "$ ")
		for _, part := range strings.Split(line, "&&") {
			part = strings.TrimSpace(part)
			if !strings.HasPrefix(part, "lfsm ") {
				continue
			}
			part = cutAny(part, " #", " |", " >", ";")
			if strings.Contains(part, "[") || hasPlaceholder(part) {
				continue
			}
			args, ok := shellWords(part)
			if !ok {
				t.Errorf("%s:%d: cannot split %q", file, n, part)
				continue
			}
			out = append(out, docCommand{file: filepath.Base(file), line: n, text: part, args: args[1:]})
		}
	}
	return out
}

func cutAny(s string, seps ...string) string {
	for _, sep := range seps {
		if i := strings.Index(s, sep); i >= 0 && !inQuotes(s[:i]) {
			s = s[:i]
		}
	}
	return strings.TrimSpace(s)
}

func inQuotes(prefix string) bool {
	return strings.Count(prefix, "'")%2 == 1 || strings.Count(prefix, `"`)%2 == 1
}

// hasPlaceholder reports an upper-case word of three or more letters outside
// quotes (MACHINE, ARN, FILE): a synopsis, not a runnable example. ID and
// EVENT stand for values a reader substitutes; they still parse.
func hasPlaceholder(s string) bool {
	words, _ := shellWords(s)
	for _, w := range words {
		if len(w) >= 3 && w != "EVENT" && strings.ToUpper(w) == w && strings.Trim(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") == "" {
			return true
		}
	}
	return false
}

// shellWords splits s as a POSIX shell would for the simple cases docs use:
// blanks separate words; single and double quotes group.
func shellWords(s string) ([]string, bool) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, quote == 0
}

// TestDocsGoBuildOutputIgnored: a go build command in the docs that names no
// -o leaves a binary named after its package in the working directory (the
// repository root): .gitignore must cover it, or git status shows it.
func TestDocsGoBuildOutputIgnored(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	root := filepath.Join("..", "..")
	if _, err := os.Stat(filepath.Join(root, ".git")); err != nil {
		t.Skip("not a git checkout")
	}
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "README.md"))
	checked := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimPrefix(strings.TrimSpace(line), "$ ")
			if !strings.HasPrefix(line, "go build ") || strings.Contains(line, " -o ") {
				continue
			}
			words, _ := shellWords(cutAny(line, " #"))
			pkg := words[len(words)-1]
			if !strings.HasPrefix(pkg, "./") {
				continue
			}
			name := filepath.Base(pkg)
			cmd := exec.Command("git", "check-ignore", "-q", "--no-index", name)
			cmd.Dir = root
			if err := cmd.Run(); err != nil {
				t.Errorf("%s: %q leaves ./%s at the repository root, which .gitignore does not cover", filepath.Base(file), line, name)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Error("no go build command found in the docs; the extraction is broken")
	}
}
