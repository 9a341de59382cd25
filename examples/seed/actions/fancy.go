package actions

import (
	"errors"
	"fmt"
)

// myFancyFunction stands for code you already have: the seed's
// my_fancy_function.
func myFancyFunction(arg1 int) string { return fmt.Sprintf("fancy(%d)", arg1) }

// myOtherFancyFunction stands for more code you already have: the seed's
// my_other_fancy_function.
func myOtherFancyFunction(mff string) error {
	if mff == "" {
		return errors.New("nothing to work on")
	}
	return nil
}
