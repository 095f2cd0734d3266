// Package atomicfile replaces files so that a reader, or the file system
// after a crash, sees either the old content or the new, never a mix or a
// truncated file.
//
// Write and WriteFile write a temporary file in the target's folder, fsync
// it, give it the old file's mode (or the given one for a new file), rename
// it over the target and fsync the folder, so the rename itself survives a
// crash. On every failure the temporary file is removed and the target is
// left as it was:
//
//	err := atomicfile.Write(path, 0o600, func(w io.Writer) error {
//		return encode(w, index)
//	})
//
// A crash between creating and renaming leaves a hidden temporary file
// (".name.tmp-" and 16 hex digits); IsTemp recognises one so that its owner
// can clean it up.
package atomicfile
