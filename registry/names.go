package registry

import (
	"fmt"
)

// MaxNameLen is the longest model, alias, file or tag name accepted.
const MaxNameLen = 128

// Latest is the pseudo alias that names the newest non-archived version of a
// model. It cannot be set, moved or deleted.
const Latest = "latest"

// ValidName reports whether s is acceptable as a model, alias, file or tag
// name. A name is 1 to MaxNameLen bytes from [A-Za-z0-9._-] and does not start
// with '.', so it can never climb out of the registry root ("..", "../x"),
// name an absolute path, hold a separator or NUL, or hide behind look-alike
// unicode. The error matches ErrInvalidName and says which byte was wrong.
func ValidName(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty; want 1-%d characters from [A-Za-z0-9._-]", ErrInvalidName, MaxNameLen)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("%w: %d bytes long; want at most %d", ErrInvalidName, len(s), MaxNameLen)
	}
	if s[0] == '.' {
		return fmt.Errorf("%w: %q starts with '.'; want a letter, digit, '_' or '-' first", ErrInvalidName, s)
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return fmt.Errorf("%w: %q has byte %#02x at offset %d; want only [A-Za-z0-9._-]", ErrInvalidName, s, s[i], i)
		}
	}
	return nil
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// checkName wraps ValidName with what the name is for.
func checkName(what, s string) error {
	if err := ValidName(s); err != nil {
		return fmt.Errorf("registry: %s name: %w", what, err)
	}
	return nil
}

// checkAlias also refuses the reserved pseudo alias.
func checkAlias(s string) error {
	if err := checkName("alias", s); err != nil {
		return err
	}
	if s == Latest {
		return fmt.Errorf("registry: alias name: %w: %q is reserved for the newest version", ErrInvalidName, s)
	}
	return nil
}
