package org.finetune.savedmodel;

import com.google.protobuf.InvalidProtocolBufferException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.tensorflow.proto.BundleEntryProto;
import org.tensorflow.proto.BundleHeaderProto;

/**
 * The index of a TensorFlow checkpoint ({@code variables/variables.index}), read as data: the
 * checkpoint key of every saved tensor with its dtype, shape, shard, offset and size.
 *
 * <p>The index is a LevelDB-format table (TensorFlow's {@code tensor_bundle}): data blocks of
 * prefix-compressed keys, an index block pointing at them, and a 48-byte footer ending in a
 * magic number. TensorFlow writes it uncompressed. The entry under the empty key is the
 * {@link BundleHeaderProto}; every other entry is a {@link BundleEntryProto}.
 */
public final class CheckpointIndex {
  private static final long TABLE_MAGIC = 0xdb4775248b80fb57L;
  private static final int FOOTER_LENGTH = 48;
  private static final int BLOCK_TRAILER_LENGTH = 5;

  private final BundleHeaderProto header;
  private final Map<String, BundleEntryProto> entries;

  private CheckpointIndex(BundleHeaderProto header, Map<String, BundleEntryProto> entries) {
    this.header = header;
    this.entries = Collections.unmodifiableMap(entries);
  }

  /** The header: number of data shards, endianness, format version. */
  public BundleHeaderProto header() {
    return header;
  }

  /** Checkpoint key to entry, in key order. */
  public Map<String, BundleEntryProto> entries() {
    return entries;
  }

  /**
   * Reads {@code <prefix>.index} and checks that every data shard it names exists and is long
   * enough for the tensors it should hold.
   *
   * @param prefix the checkpoint prefix, e.g. {@code model/variables/variables}
   * @throws InvalidModelException when a file is missing, truncated or not a checkpoint index
   */
  public static CheckpointIndex read(Path prefix) {
    Path indexFile = prefix.resolveSibling(prefix.getFileName() + ".index");
    byte[] bytes;
    try {
      bytes = Files.readAllBytes(indexFile);
    } catch (NoSuchFileException e) {
      throw new InvalidModelException(indexFile, indexFile + " is missing: the SavedModel's variables are not"
          + " there. Copy the whole SavedModel directory, including variables/, or re-export the model.");
    } catch (IOException e) {
      throw new InvalidModelException(indexFile, "cannot read " + indexFile + ": " + e.getMessage(), e);
    }
    CheckpointIndex index;
    try {
      index = parse(bytes);
    } catch (RuntimeException | InvalidProtocolBufferException e) {
      throw new InvalidModelException(indexFile, indexFile + " is not a valid checkpoint index (" + e.getMessage()
          + "); it is truncated or damaged. Re-copy or re-export the SavedModel.", e);
    }
    index.checkShards(prefix);
    return index;
  }

  /**
   * Reads a scalar string tensor (such as {@code _CHECKPOINTABLE_OBJECT_GRAPH}) from the data
   * shard, without the runtime. A bundle stores string tensors as their lengths (varints), a
   * checksum of the lengths, then the bytes.
   *
   * @return empty when the checkpoint has no such key
   */
  public java.util.Optional<byte[]> readScalarString(Path prefix, String key) {
    BundleEntryProto entry = entries.get(key);
    if (entry == null) {
      return java.util.Optional.empty();
    }
    Path data = dataFile(prefix, entry.getShardId());
    if (entry.getSize() > Integer.MAX_VALUE - 8) {
      throw new InvalidModelException(data, "tensor '" + key + "' in " + data + " claims " + entry.getSize()
          + " bytes, more than a string tensor can hold; the index is damaged. Re-copy or re-export the SavedModel.");
    }
    byte[] raw = new byte[(int) entry.getSize()];
    try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(data)) {
      ByteBuffer buf = ByteBuffer.wrap(raw);
      long pos = entry.getOffset();
      while (buf.hasRemaining()) {
        int n = ch.read(buf, pos);
        if (n < 0) {
          throw new InvalidModelException(data, data + " ends inside tensor '" + key + "'; it is truncated."
              + " Re-copy or re-export the SavedModel.");
        }
        pos += n;
      }
    } catch (IOException e) {
      throw new InvalidModelException(data, "cannot read " + data + ": " + e.getMessage(), e);
    }
    InvalidModelException damaged = new InvalidModelException(data, "tensor '" + key + "' in " + data
        + " is damaged: it does not hold one string. Re-copy or re-export the SavedModel.");
    Cursor c = new Cursor(raw, 0);
    long length;
    try {
      length = c.varint64();
    } catch (IllegalArgumentException e) {
      throw damaged;
    }
    long start = c.pos + 4L; // skip the masked CRC32C of the lengths
    if (length < 0 || start + length > raw.length) {
      throw damaged;
    }
    return java.util.Optional.of(java.util.Arrays.copyOfRange(raw, (int) start, (int) (start + length)));
  }

  private Path dataFile(Path prefix, int shard) {
    return prefix.resolveSibling(String.format("%s.data-%05d-of-%05d", prefix.getFileName(), shard,
        header.getNumShards()));
  }

  private void checkShards(Path prefix) {
    int shards = header.getNumShards();
    // By shard, the end of its last tensor; a map, as the header's shard count is not to be trusted.
    Map<Integer, Long> needed = new java.util.HashMap<>();
    for (Map.Entry<String, BundleEntryProto> e : entries.entrySet()) {
      BundleEntryProto entry = e.getValue();
      if (entry.getShardId() < 0 || entry.getShardId() >= shards) {
        throw new InvalidModelException(prefix, "checkpoint entry '" + e.getKey() + "' names shard "
            + entry.getShardId() + " of " + shards + " in " + prefix + ".index: the index is damaged."
            + " Re-copy or re-export the SavedModel.");
      }
      // Offsets and sizes are unsigned in the file; read as longs, a damaged one is negative or overflows.
      if (entry.getOffset() < 0 || entry.getSize() < 0 || entry.getSize() > Long.MAX_VALUE - entry.getOffset()) {
        throw new InvalidModelException(prefix, "checkpoint entry '" + e.getKey() + "' in " + prefix
            + ".index places its tensor at byte " + Long.toUnsignedString(entry.getOffset()) + " with "
            + Long.toUnsignedString(entry.getSize()) + " bytes: the index is damaged. Re-copy or re-export the SavedModel.");
      }
      needed.merge(entry.getShardId(), entry.getOffset() + entry.getSize(), Math::max);
    }
    for (int shard = 0; shard < shards; shard++) {
      Path data = dataFile(prefix, shard);
      long size;
      try {
        size = Files.size(data);
      } catch (NoSuchFileException e) {
        throw new InvalidModelException(data, data + " is missing: the checkpoint has " + shards
            + " data shard(s). Copy the whole SavedModel directory, including variables/, or re-export the model.");
      } catch (IOException e) {
        throw new InvalidModelException(data, "cannot read " + data + ": " + e.getMessage(), e);
      }
      long end = needed.getOrDefault(shard, 0L);
      if (size < end) {
        throw new InvalidModelException(data, data + " is truncated: " + size + " bytes, but the index places"
            + " tensors up to byte " + end + ". Re-copy or re-export the SavedModel.");
      }
    }
  }

  static CheckpointIndex parse(byte[] bytes) throws InvalidProtocolBufferException {
    if (bytes.length < FOOTER_LENGTH) {
      throw new IllegalArgumentException(bytes.length + " bytes, shorter than a table footer");
    }
    ByteBuffer footer = ByteBuffer.wrap(bytes, bytes.length - FOOTER_LENGTH, FOOTER_LENGTH).order(ByteOrder.LITTLE_ENDIAN);
    long magic = ByteBuffer.wrap(bytes, bytes.length - 8, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    if (magic != TABLE_MAGIC) {
      throw new IllegalArgumentException("no table magic number at the end");
    }
    Cursor cursor = new Cursor(bytes, footer.position());
    cursor.varint64(); // metaindex block offset: TensorFlow writes an empty one
    cursor.varint64();
    long indexOffset = cursor.varint64();
    long indexSize = cursor.varint64();

    List<byte[]> values = new ArrayList<>();
    List<String> keys = new ArrayList<>();
    for (byte[] handle : blockEntries(bytes, indexOffset, indexSize, null)) {
      Cursor h = new Cursor(handle, 0);
      long offset = h.varint64();
      long size = h.varint64();
      blockEntries(bytes, offset, size, (key, value) -> {
        keys.add(key);
        values.add(value);
      });
    }
    BundleHeaderProto header = null;
    Map<String, BundleEntryProto> entries = new LinkedHashMap<>();
    for (int i = 0; i < keys.size(); i++) {
      if (keys.get(i).isEmpty()) {
        header = BundleHeaderProto.parseFrom(values.get(i));
      } else {
        entries.put(keys.get(i), BundleEntryProto.parseFrom(values.get(i)));
      }
    }
    if (header == null) {
      throw new IllegalArgumentException("no bundle header entry");
    }
    return new CheckpointIndex(header, entries);
  }

  private interface EntrySink {
    void accept(String key, byte[] value);
  }

  /** Decodes one block; returns its values when {@code sink} is null, else hands entries to it. */
  private static List<byte[]> blockEntries(byte[] file, long offset, long size, EntrySink sink) {
    if (offset < 0 || size < 4 || offset + size + BLOCK_TRAILER_LENGTH > file.length) {
      throw new IllegalArgumentException("block at " + offset + "+" + size + " lies outside the file");
    }
    int start = (int) offset;
    int end = (int) (offset + size);
    // the trailer: the compression type, then the masked CRC32C of the block and that type byte
    java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
    crc.update(file, start, (int) size + 1);
    int stored = ByteBuffer.wrap(file, end + 1, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();
    if (mask((int) crc.getValue()) != stored) {
      throw new IllegalArgumentException("the checksum of the block at byte " + offset + " does not match");
    }
    int compression = file[end];
    if (compression != 0) {
      throw new IllegalArgumentException("compressed block (type " + compression + "), TensorFlow writes none");
    }
    int restarts = ByteBuffer.wrap(file, end - 4, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();
    int limit = end - 4 - 4 * restarts;
    if (restarts < 0 || limit < start) {
      throw new IllegalArgumentException("bad restart array in block at " + offset);
    }
    List<byte[]> values = new ArrayList<>();
    Cursor c = new Cursor(file, start);
    byte[] key = new byte[0];
    while (c.pos < limit) {
      int shared = (int) c.varint64();
      int unshared = (int) c.varint64();
      int valueLength = (int) c.varint64();
      if (shared > key.length || c.pos + unshared + valueLength > limit) {
        throw new IllegalArgumentException("bad entry in block at " + offset);
      }
      byte[] next = new byte[shared + unshared];
      System.arraycopy(key, 0, next, 0, shared);
      System.arraycopy(file, c.pos, next, shared, unshared);
      c.pos += unshared;
      key = next;
      byte[] value = new byte[valueLength];
      System.arraycopy(file, c.pos, value, 0, valueLength);
      c.pos += valueLength;
      if (sink == null) {
        values.add(value);
      } else {
        sink.accept(new String(key, java.nio.charset.StandardCharsets.UTF_8), value);
      }
    }
    return values;
  }

  /** LevelDB's (and TensorFlow's) masking of a stored CRC32C. */
  static int mask(int crc) {
    return ((crc >>> 15) | (crc << 17)) + 0xa282ead8;
  }

  private static final class Cursor {
    final byte[] bytes;
    int pos;

    Cursor(byte[] bytes, int pos) {
      this.bytes = bytes;
      this.pos = pos;
    }

    long varint64() {
      long result = 0;
      for (int shift = 0; shift < 64; shift += 7) {
        if (pos >= bytes.length) {
          throw new IllegalArgumentException("varint runs past the end");
        }
        int b = bytes[pos++] & 0xff;
        result |= (long) (b & 0x7f) << shift;
        if (b < 0x80) {
          return result;
        }
      }
      throw new IllegalArgumentException("varint longer than 10 bytes");
    }
  }
}
