// Package checkfile frames the binary files Quiver writes with the
// checksum they share: a body followed by an 8-byte little-endian trailer
// holding the xxhash64 of every byte of the body.
//
// Each format keeps its own header (magic, version, counts) inside the
// body; this package only hashes and checks. A writer streams the body
// through a Writer and ends it with WriteTrailer.
//
// A reader has two ways in. Small encodings are checked whole before any
// byte of them is parsed: Verify returns the body only when the trailer
// matches. Large files (a vector index can be gigabytes) are streamed
// instead of being read twice or held in memory: a Reader hashes the body
// as the decoder reads it, ends reads at the body's end, and tells the
// decoder how many bytes are left (Remaining), so that a count the file
// cannot hold is refused before anything is allocated for it; the decoded
// value is handed out only after Verify has checked the trailer.
//
//	cr := checkfile.NewReader(bufio.NewReader(f), size-checkfile.TrailerSize)
//	v, err := decode(cr) // checks every count against cr.Remaining()
//	if err == nil {
//		err = cr.Verify()
//	}
package checkfile
