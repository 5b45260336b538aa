package model

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"sort"
)

// Tensor is a named float32 array with a shape (row-major).
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// Weights is an ordered set of named tensors: the engine-free form of every
// trained model and checkpoint.
type Weights struct {
	Tensors []Tensor
}

// Get returns the tensor called name.
func (w *Weights) Get(name string) (Tensor, bool) {
	for _, t := range w.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

// Put adds or replaces a tensor, keeping names sorted so files are canonical.
func (w *Weights) Put(t Tensor) {
	for i := range w.Tensors {
		if w.Tensors[i].Name == t.Name {
			w.Tensors[i] = t
			return
		}
	}
	w.Tensors = append(w.Tensors, t)
	sort.Slice(w.Tensors, func(i, j int) bool { return w.Tensors[i].Name < w.Tensors[j].Name })
}

// The weights file format ("SHLFW", version 1), all integers little-endian:
//
//	magic   [8]byte  "SHLFW\x00\x01\x00"
//	count   uint32   number of tensors
//	count × {
//	  nameLen uint16, name [nameLen]byte (UTF-8)
//	  ndim    uint8,  dims [ndim]uint64
//	  data    [prod(dims)]float32 (IEEE 754)
//	}
//	crc32   uint32   IEEE CRC of every byte before it
//
// Tensors appear in name order, so equal weights give identical files.
var weightsMagic = [8]byte{'S', 'H', 'L', 'F', 'W', 0, 1, 0}

// maxTensorElems guards readers against absurd shapes in corrupt files.
const maxTensorElems = 1 << 34

// WriteWeights encodes w in the SHLFW v1 format.
func WriteWeights(out io.Writer, w *Weights) error {
	h := crc32.NewIEEE()
	bw := bufio.NewWriterSize(io.MultiWriter(out, h), 1<<20)
	if _, err := bw.Write(weightsMagic[:]); err != nil {
		return err
	}
	put := func(v any) error { return binary.Write(bw, binary.LittleEndian, v) }
	if err := put(uint32(len(w.Tensors))); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<16)
	for _, t := range w.Tensors {
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		if n != len(t.Data) {
			return fmt.Errorf("weights: tensor %s: shape %v holds %d values, have %d", t.Name, t.Shape, n, len(t.Data))
		}
		if len(t.Name) > math.MaxUint16 || len(t.Shape) > math.MaxUint8 {
			return fmt.Errorf("weights: tensor %s: name or rank too large", t.Name)
		}
		if err := put(uint16(len(t.Name))); err != nil {
			return err
		}
		bw.WriteString(t.Name)
		put(uint8(len(t.Shape)))
		for _, d := range t.Shape {
			put(uint64(d))
		}
		for i := 0; i < len(t.Data); {
			buf = buf[:0]
			for ; i < len(t.Data) && len(buf) < cap(buf); i++ {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(t.Data[i]))
			}
			if _, err := bw.Write(buf); err != nil {
				return err
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return binary.Write(out, binary.LittleEndian, h.Sum32())
}

// ReadWeights decodes a SHLFW v1 stream and verifies its checksum.
func ReadWeights(in io.Reader) (*Weights, error) {
	h := crc32.NewIEEE()
	br := bufio.NewReaderSize(in, 1<<20)
	r := io.TeeReader(br, h)
	get := func(v any) error { return binary.Read(r, binary.LittleEndian, v) }
	var magic [8]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, fmt.Errorf("weights: header: %w", err)
	}
	if magic != weightsMagic {
		return nil, errors.New("weights: not a SHLFW v1 file")
	}
	var count uint32
	if err := get(&count); err != nil {
		return nil, fmt.Errorf("weights: count: %w", err)
	}
	w := &Weights{}
	for k := uint32(0); k < count; k++ {
		var nameLen uint16
		if err := get(&nameLen); err != nil {
			return nil, fmt.Errorf("weights: tensor %d: %w", k, err)
		}
		name := make([]byte, nameLen)
		if _, err := io.ReadFull(r, name); err != nil {
			return nil, fmt.Errorf("weights: tensor %d name: %w", k, err)
		}
		var ndim uint8
		if err := get(&ndim); err != nil {
			return nil, fmt.Errorf("weights: tensor %s: %w", name, err)
		}
		shape := make([]int, ndim)
		n := uint64(1)
		for d := range shape {
			var v uint64
			if err := get(&v); err != nil {
				return nil, fmt.Errorf("weights: tensor %s: %w", name, err)
			}
			n *= v
			if v > maxTensorElems || n > maxTensorElems {
				return nil, fmt.Errorf("weights: tensor %s: shape too large", name)
			}
			shape[d] = int(v)
		}
		data := make([]float32, 0, min(n, 1<<20))
		var b [4]byte
		for i := uint64(0); i < n; i++ {
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return nil, fmt.Errorf("weights: tensor %s data: %w", name, err)
			}
			data = append(data, math.Float32frombits(binary.LittleEndian.Uint32(b[:])))
		}
		w.Tensors = append(w.Tensors, Tensor{Name: string(name), Shape: shape, Data: data})
	}
	want := h.Sum32()
	var got uint32
	if err := binary.Read(br, binary.LittleEndian, &got); err != nil {
		return nil, fmt.Errorf("weights: checksum: %w", err)
	}
	if got != want {
		return nil, fmt.Errorf("weights: checksum mismatch (file corrupt)")
	}
	return w, nil
}
