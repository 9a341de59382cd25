package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseAge parses a positive age such as lfsm prune --older-than and the
// retention setting take: a Go duration (90m, 720h) or a number of days (30d).
func ParseAge(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || !(days > 0) || days > 100*365 {
			return 0, fmt.Errorf("invalid age %q: want a duration such as 30d, 720h or 90m", s)
		}
		d = time.Duration(days * 24 * float64(time.Hour))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("invalid age %q: want a duration such as 30d, 720h or 90m", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("invalid age %q: must be positive", s)
	}
	return d, nil
}
