package org.finetune.text;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingType;
import com.knuddels.jtokkit.api.IntArrayList;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * GPT-2's tokenizer: byte-level BPE over the UTF-8 bytes of the text, split first with GPT-2's
 * pattern {@code 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+}. The
 * ranks are OpenAI's {@code r50k_base}, which jtokkit bundles: no files, no network.
 *
 * <p>{@link #encode} treats its input as ordinary text: {@code <|endoftext|>} written in the text
 * is seven ordinary tokens, never {@link #END_OF_TEXT} (callers add that id themselves), as in
 * OpenAI's {@code encoder.py}. Every string round-trips: {@code decode(encode(s)).equals(s)}.
 *
 * <p>Immutable and thread-safe; {@link #get()} returns the one shared instance.
 */
public final class Gpt2Tokenizer {
  /** The id of {@code <|endoftext|>}, GPT-2's document separator (and start and end token). */
  public static final int END_OF_TEXT = 50256;
  /** The number of ids: 50,000 merges, 256 bytes and {@code <|endoftext|>}; valid ids are below it. */
  public static final int VOCABULARY_SIZE = 50257;

  private final Encoding encoding;

  private Gpt2Tokenizer(Encoding encoding) {
    this.encoding = encoding;
  }

  /** The shared instance (the ranks load on first use, about a tenth of a second). */
  public static Gpt2Tokenizer get() {
    return Shared.INSTANCE;
  }

  /** The ids of {@code text}, read as ordinary text (see the class comment); empty for "". */
  public int[] encode(String text) {
    Objects.requireNonNull(text, "text");
    return encoding.encodeOrdinary(text).toArray();
  }

  /**
   * The text of {@code ids}. Ids that end inside a multibyte character decode to U+FFFD; use
   * {@link #decodeBytes} or a {@link Detokenizer} to handle partial output.
   *
   * @throws IllegalArgumentException if an id is outside [0, {@value #VOCABULARY_SIZE})
   */
  public String decode(int[] ids) {
    return new String(decodeBytes(ids), StandardCharsets.UTF_8);
  }

  /**
   * The raw UTF-8 bytes of {@code ids}; a token may end in the middle of a character.
   *
   * @throws IllegalArgumentException if an id is outside [0, {@value #VOCABULARY_SIZE})
   */
  public byte[] decodeBytes(int[] ids) {
    Objects.requireNonNull(ids, "ids");
    IntArrayList list = new IntArrayList(ids.length);
    for (int i = 0; i < ids.length; i++) {
      list.add(checked(ids[i], i));
    }
    return encoding.decodeBytes(list);
  }

  /** A new streaming decoder for one sequence of generated ids. */
  public Detokenizer detokenizer() {
    return new Detokenizer(this);
  }

  private static int checked(int id, int index) {
    if (id < 0 || id >= VOCABULARY_SIZE) {
      throw new IllegalArgumentException("token id " + id + (index >= 0 ? " at index " + index : "")
          + " is outside GPT-2's vocabulary [0, " + VOCABULARY_SIZE + ")");
    }
    return id;
  }

  /**
   * Turns ids into text one at a time, as a model generates them: {@link #accept} returns the text
   * that is complete so far and holds back the bytes of a trailing character that the next token
   * may finish; {@link #flush} returns what is held back (an unfinished character as U+FFFD). The
   * concatenation of everything returned equals {@link Gpt2Tokenizer#decode} of all the ids. Not
   * thread-safe: one per sequence.
   */
  public static final class Detokenizer {
    private final Gpt2Tokenizer tokenizer;
    private byte[] pending = new byte[0];

    private Detokenizer(Gpt2Tokenizer tokenizer) {
      this.tokenizer = tokenizer;
    }

    /**
     * Adds one id; returns the text it completes, possibly "".
     *
     * @throws IllegalArgumentException if {@code id} is outside [0, {@value #VOCABULARY_SIZE})
     */
    public String accept(int id) {
      byte[] token = tokenizer.encoding.decodeBytes(single(checked(id, -1)));
      byte[] bytes = Arrays.copyOf(pending, pending.length + token.length);
      System.arraycopy(token, 0, bytes, pending.length, token.length);
      int complete = bytes.length - incompleteTail(bytes);
      pending = Arrays.copyOfRange(bytes, complete, bytes.length);
      return new String(bytes, 0, complete, StandardCharsets.UTF_8);
    }

    /** Returns the held-back bytes as text (U+FFFD for an unfinished character) and forgets them. */
    public String flush() {
      String rest = new String(pending, StandardCharsets.UTF_8);
      pending = new byte[0];
      return rest;
    }

    private static IntArrayList single(int id) {
      IntArrayList list = new IntArrayList(1);
      list.add(id);
      return list;
    }

    /**
     * The length of the trailing bytes that begin a well-formed UTF-8 character but do not finish
     * it (0 to 3); bytes that can never become a character are not held back.
     */
    static int incompleteTail(byte[] bytes) {
      for (int back = 1; back <= Math.min(3, bytes.length); back++) {
        int lead = bytes[bytes.length - back] & 0xff;
        if (lead < 0x80) {
          return 0;
        }
        if (lead < 0xc0) {
          continue;
        }
        int length = lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3
            : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;
        if (length <= back || !validSecondByte(lead, back > 1 ? bytes[bytes.length - back + 1] & 0xff : -1)) {
          return 0;
        }
        return back;
      }
      return 0;
    }

    /** Whether {@code second} may follow {@code lead} (-1: no second byte yet), per RFC 3629. */
    private static boolean validSecondByte(int lead, int second) {
      if (second < 0) {
        return true;
      }
      int low = lead == 0xe0 ? 0xa0 : lead == 0xf0 ? 0x90 : 0x80;
      int high = lead == 0xed ? 0x9f : lead == 0xf4 ? 0x8f : 0xbf;
      return second >= low && second <= high;
    }
  }

  private static final class Shared {
    static final Gpt2Tokenizer INSTANCE =
        new Gpt2Tokenizer(Encodings.newLazyEncodingRegistry().getEncoding(EncodingType.R50K_BASE));
  }

  /** Each document of {@code corpus} as GPT-2 tokens, in order. */
  public List<int[]> encode(org.finetune.data.TextCorpus corpus) {
    return corpus.documents().stream().map(d -> encode(d.text())).toList();
  }
}
