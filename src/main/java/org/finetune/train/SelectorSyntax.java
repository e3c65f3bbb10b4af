package org.finetune.train;

import java.util.Arrays;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * The text form of selectors, shared by flags and plan files:
 * <pre>
 *   all                       every layer
 *   layers:a,b,c              exactly these layers
 *   glob:block5_*             a glob over layer names
 *   regex:transformer_layer_(10|11)
 *   range:3..7                forward-order positions, 0-based, both included
 *   upto:block3_pool          from the first layer up to and including this one
 *   last:4                    the last 4 layers with weights
 *   block:block5              a named block (see Selector.Block)
 *   not:SELECTOR              every layer but those (not:block:block1 freezes block 1)
 *   adapters                  the low-rank adapters alone (see Selector.Adapters)
 *   NAME                      shorthand for block:NAME
 * </pre>
 */
final class SelectorSyntax {
  private SelectorSyntax() {}

  static Selector parse(String text) {
    String t = text.trim();
    if (t.isEmpty()) {
      throw new IllegalArgumentException("empty layer selector; see the selector syntax (e.g. block:block5, last:2)");
    }
    if (t.equals("all")) {
      return new Selector.All();
    }
    if (t.equals("adapters")) {
      return new Selector.Adapters();
    }
    int colon = t.indexOf(':');
    if (colon < 0) {
      return new Selector.Block(t);
    }
    String kind = t.substring(0, colon);
    String arg = t.substring(colon + 1);
    try {
      switch (kind) {
        case "layers":
          return new Selector.Layers(Arrays.stream(arg.split(",")).map(String::trim).filter(s -> !s.isEmpty()).toList());
        case "glob":
          return new Selector.Glob(arg);
        case "regex":
          return new Selector.Regex(Pattern.compile(arg));
        case "range": {
          String[] ends = arg.split("\\.\\.");
          if (ends.length != 2) {
            throw new IllegalArgumentException("range needs FROM..TO, got '" + arg + "'");
          }
          return new Selector.IndexRange(Integer.parseInt(ends[0].trim()), Integer.parseInt(ends[1].trim()));
        }
        case "upto":
          return new Selector.UpTo(arg);
        case "last":
          return new Selector.LastN(Integer.parseInt(arg.trim()));
        case "block":
          return new Selector.Block(arg);
        case "not":
          return new Selector.Not(parse(arg));
        default:
          throw new IllegalArgumentException("unknown selector kind '" + kind
              + "'; use all, layers:, glob:, regex:, range:, upto:, last:, block: or not:");
      }
    } catch (NumberFormatException | PatternSyntaxException e) {
      throw new IllegalArgumentException("bad layer selector '" + text + "': " + e.getMessage(), e);
    }
  }

  /** The text form of {@code s}; {@link #parse} gives it back. */
  static String format(Selector s) {
    if (s instanceof Selector.All) {
      return "all";
    } else if (s instanceof Selector.Adapters) {
      return "adapters";
    } else if (s instanceof Selector.Layers l) {
      return "layers:" + String.join(",", l.names());
    } else if (s instanceof Selector.Glob g) {
      return "glob:" + g.pattern();
    } else if (s instanceof Selector.Regex r) {
      return "regex:" + r.pattern().pattern();
    } else if (s instanceof Selector.IndexRange r) {
      return "range:" + r.from() + ".." + r.to();
    } else if (s instanceof Selector.UpTo u) {
      return "upto:" + u.layer();
    } else if (s instanceof Selector.LastN n) {
      return "last:" + n.n();
    } else if (s instanceof Selector.Block b) {
      return "block:" + b.name();
    } else if (s instanceof Selector.Not n) {
      return "not:" + format(n.inner());
    }
    throw new IllegalArgumentException("unsupported selector " + s);
  }
}
