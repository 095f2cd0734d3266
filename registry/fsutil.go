package registry

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
)

// tempName returns a hidden, unique name in dir for staging.
func tempName(dir, prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(dir, fmt.Sprintf(".%s-%s", prefix, hex.EncodeToString(b[:])))
}
