package chlocal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/ClickHouse/ch-go/proto"
)

// query handles a Query packet: decode it, read the external tables the
// client sends after it (none are supported: ch-go always sends just the
// empty end block), run it and answer. Engine errors go back as Exception
// packets and keep the connection; a returned error closes it.
func (c *conn) query() error {
	q, err := c.r.decodeQuery(c.ver)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	// The answer is flushed after this returns: a client that has it no
	// longer sees the query in system.processes.
	pr := c.procs.add(q.ID, c.user, q.Body, c.db)
	defer c.procs.remove(pr)
	defer func() {
		// Keep the connection's scratch buffers from its largest block.
		if cap(c.blocks.buf) > 16<<20 {
			c.blocks.buf = nil
		}
		if cap(c.insertBuf) > 16<<20 {
			c.insertBuf = nil
		}
	}()
	c.compressed = q.Compression == proto.CompressionEnabled
	c.method = compressionMethod(q.Settings)
	if c.zw != nil && c.zwMethod != c.method {
		c.zw = nil
	}
	external := 0
	for {
		b, err := c.nextData()
		if err != nil {
			return fmt.Errorf("external data: %w", err)
		}
		if len(b.Cols) == 0 && b.Rows == 0 {
			break
		}
		external++
	}
	if external > 0 {
		c.exception(&Exception{Code: int32(proto.ErrNotImplemented),
			Message: "DB::Exception: chlocal does not support external tables. (NOT_IMPLEMENTED)"})
		return nil
	}
	stmt := parseStatement(q.Body)
	if db, ok := stmt.useDatabase(); ok {
		if err := c.eng.use(db); err != nil {
			c.exception(err)
			return nil
		}
		c.db = db
		proto.ServerCodeEndOfStream.Encode(&c.out)
		return nil
	}
	if ins, ok := stmt.insertWithData(); ok {
		return c.insert(q, ins)
	}
	return c.execute(q, stmt)
}

func compressionMethod(settings []proto.Setting) compress.Method {
	for _, s := range settings {
		if s.Key != "network_compression_method" {
			continue
		}
		switch strings.ToLower(s.Value) {
		case "zstd":
			return compress.ZSTD
		case "none":
			return compress.None
		}
	}
	return compress.LZ4
}

// execute runs any statement but an INSERT with data from the client and
// sends its result, if any, as Data blocks: first the header (no rows),
// then the rows as the engine produced them.
func (c *conn) execute(q proto.Query, stmt statement) error {
	sql, empty := c.procs.withProcesses(stmt.withoutFormat())
	res, err := c.eng.run(c.db, q.Settings, []byte(sql), "Native")
	if err != nil {
		c.exception(err)
		return nil
	}
	defer res.free()
	blocks, err := splitNative(res.Data)
	if err != nil {
		c.exception(&Exception{Code: int32(proto.ErrNotImplemented),
			Message: fmt.Sprintf("DB::Exception: chlocal cannot send the result: %v. (NOT_IMPLEMENTED)", err)})
		return nil
	}
	if len(blocks) == 0 {
		if kw := stmt.keyword(); kw == "SELECT" || kw == "WITH" {
			// The engine writes nothing for no rows; ClickHouse still sends
			// the header, and clients rely on it for the column types.
			if h, err := describeKept(c.eng, c.db, "DESCRIBE TABLE ("+empty+")", false); err == nil {
				blocks = append(blocks, h)
			}
		}
	}
	var profile proto.Profile
	for i, b := range blocks {
		if i == 0 && b.Rows > 0 {
			if err := c.writeData(block{Cols: b.Cols}); err != nil {
				return err
			}
		}
		if err := c.writeData(b); err != nil {
			return err
		}
		if err := c.flush(); err != nil {
			return err
		}
		profile.Rows += uint64(b.Rows)
		profile.Blocks++
		for _, col := range b.Cols {
			profile.Bytes += uint64(len(col.Data))
		}
	}
	c.progress(proto.Progress{
		Rows:       res.RowsRead,
		Bytes:      res.BytesRead,
		WroteRows:  res.RowsWritten,
		WroteBytes: res.BytesWritten,
		ElapsedNs:  res.ElapsedNs,
	})
	if len(blocks) > 0 {
		profile.EncodeAware(&c.out, c.ver)
	}
	proto.ServerCodeEndOfStream.Encode(&c.out)
	return nil
}

func (c *conn) progress(p proto.Progress) {
	proto.ServerCodeProgress.Encode(&c.out)
	p.EncodeAware(&c.out, c.ver)
}

// insert handles an INSERT whose rows the client sends: as ClickHouse does,
// reply with the header of the columns to insert, read Data blocks up to an
// empty one, then insert them all in one engine query in the Native format.
func (c *conn) insert(q proto.Query, ins insert) error {
	header, err := insertHeader(c.eng, c.db, ins)
	if err != nil {
		c.exception(err)
		return nil
	}
	if err := c.writeData(header); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	// The rows go to a file read by INSERT ... FROM INFILE: chDB cuts
	// binary data inline in the query at the first empty line.
	f, err := os.CreateTemp(c.eng.tempDir(), ".chlocal-insert-*.native")
	if err != nil {
		return fmt.Errorf("insert into %s: %w", ins.Table, err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	if c.insertW == nil {
		c.insertW = bufio.NewWriterSize(f, 1<<20)
	}
	w := c.insertW
	w.Reset(f)
	defer w.Reset(nil) // not keeping the file
	var (
		rows  int
		total int64
	)
	for {
		b, err := c.nextData()
		if err != nil {
			return fmt.Errorf("insert data: %w", err)
		}
		if len(b.Cols) == 0 && b.Rows == 0 {
			break
		}
		if b.Rows == 0 {
			continue
		}
		buf := appendBlock(c.insertBuf[:0], b, false, false)
		c.insertBuf = buf
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("insert into %s: %w", ins.Table, err)
		}
		rows += b.Rows
		if total += int64(len(buf)); total > maxInsertBytes {
			return fmt.Errorf("insert into %s: more than %d bytes", ins.Table, int64(maxInsertBytes))
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("insert into %s: %w", ins.Table, err)
	}
	if release := c.procs.holdInsert(ins.Table); release != nil {
		// Not reading the connection meanwhile: the INSERT runs even if
		// the client goes.
		<-release
	}
	if rows > 0 {
		sql := "INSERT INTO " + ins.Table
		if ins.Columns != "" {
			sql += " (" + ins.Columns + ")"
		}
		sql += " FROM INFILE " + quoteString(f.Name())
		if ins.Settings != "" {
			sql += " " + ins.Settings
		}
		sql += " FORMAT Native"
		res, err := c.eng.run(c.db, q.Settings, []byte(sql), "")
		if err != nil {
			c.exception(err)
			return nil
		}
		c.progress(proto.Progress{WroteRows: res.RowsWritten, WroteBytes: res.BytesWritten, ElapsedNs: res.ElapsedNs})
		res.free()
	}
	proto.ServerCodeEndOfStream.Encode(&c.out)
	return nil
}

// splitNative splits the engine's Native output into blocks.
func splitNative(data []byte) ([]block, error) {
	r := bytes.NewReader(data)
	br := blockReader{r: r}
	var blocks []block
	for r.Len() > 0 {
		b, err := br.readBlock(false, false)
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, b)
	}
	return blocks, nil
}

// headerCache is a backend that keeps the headers describe returns between statements that
// may change columns (the engine does).
type headerCache interface {
	header(key string) (h block, gen uint64, ok bool)
	keepHeader(key string, h block, gen uint64)
}

// insertHeader returns the columns an INSERT takes, with their types.
func insertHeader(e backend, db string, ins insert) (block, error) {
	if ins.Columns != "" {
		return describeKept(e, db, "DESCRIBE TABLE (SELECT "+ins.Columns+" FROM "+ins.Table+")", false)
	}
	return describeKept(e, db, "DESCRIBE TABLE "+ins.Table, true)
}

// describeKept is describe through the backend's header cache, if it has one. Callers must not
// modify the header: it may be shared.
func describeKept(e backend, db, sql string, insertable bool) (block, error) {
	hc, ok := e.(headerCache)
	if !ok {
		return describe(e, db, sql, insertable)
	}
	key := fmt.Sprintf("%s\x00%t\x00%s", db, insertable, sql)
	h, gen, ok := hc.header(key)
	if ok {
		return h, nil
	}
	h, err := describe(e, db, sql, insertable)
	if err == nil {
		hc.keepHeader(key, h, gen)
	}
	return h, err
}

// describe runs a DESCRIBE statement and returns its columns as a header
// block. insertable keeps only columns an INSERT without a column list
// takes: no MATERIALIZED, ALIAS or EPHEMERAL ones.
func describe(e backend, db, sql string, insertable bool) (block, error) {
	res, err := e.run(db, nil, []byte(sql), "Native")
	if err != nil {
		return block{}, err
	}
	defer res.free()
	blocks, err := splitNative(res.Data)
	if err != nil {
		return block{}, fmt.Errorf("%s: %w", sql, err)
	}
	var h block
	for _, b := range blocks {
		cols := map[string][]string{}
		for _, c := range b.Cols {
			if c.Type != "String" {
				continue
			}
			v, err := stringValues(c.Data, b.Rows)
			if err != nil {
				return block{}, fmt.Errorf("%s: column %q: %w", sql, c.Name, err)
			}
			cols[c.Name] = v
		}
		names, types, kinds := cols["name"], cols["type"], cols["default_type"]
		if len(names) != b.Rows || len(types) != b.Rows {
			return block{}, fmt.Errorf("%s: no name and type columns", sql)
		}
		for i := range b.Rows {
			if insertable && kinds != nil && kinds[i] != "" && kinds[i] != "DEFAULT" {
				continue
			}
			h.Cols = append(h.Cols, column{Name: names[i], Type: types[i]})
		}
	}
	return h, nil
}

// stringValues decodes rows values of a String column.
func stringValues(data []byte, rows int) ([]string, error) {
	out := make([]string, 0, rows)
	for range rows {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			return nil, io.ErrUnexpectedEOF
		}
		out = append(out, string(data[k:k+int(n)]))
		data = data[k+int(n):]
	}
	return out, nil
}
