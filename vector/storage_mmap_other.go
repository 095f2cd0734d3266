//go:build !linux

package vector

import "os"

// mapFile maps nothing here: the vectors file is read with pread.
func mapFile(*os.File, int64) ([]byte, error) { return nil, nil }

func unmapFile([]byte) error { return nil }
