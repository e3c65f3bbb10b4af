package org.finetune.graph;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.finetune.savedmodel.TensorNames;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.proto.TensorProto;
import org.tensorflow.proto.TensorShapeProto;

/**
 * The values of small integer and boolean tensors that a graph fixes before it runs: loop
 * counters, trip counts, list indices. Reads {@code Const} nodes and follows the arithmetic
 * that Keras's recurrent loops put between them and a loop's condition; a tensor that depends on
 * anything else (a placeholder's value, a variable, an op not listed) has no static value.
 *
 * <p>Values are vectors of longs (a scalar is a vector of one with {@code scalar} set);
 * booleans are 0 and 1. {@code Shape} of a tensor whose static shape is known here (a
 * placeholder with that dimension fixed, through transposes, reversals and element-wise ops)
 * is a value too.
 */
final class StaticValues {
  /** An element of a shape that is not fixed (a free batch dimension): only slicing passes it on. */
  static final long UNKNOWN = Long.MIN_VALUE;

  /** A static value: elements, and whether the tensor is a scalar. */
  record Value(long[] v, boolean scalar) {
    long get(int i) {
      return v[i];
    }

    /** True when every element is fixed. */
    boolean known() {
      for (long x : v) {
        if (x == UNKNOWN) {
          return false;
        }
      }
      return true;
    }
  }

  private final Map<String, NodeDef> nodes;
  private final Map<String, Optional<Value>> memo = new HashMap<>();
  /** Shapes stated by whoever made the tensor (a rewritten list's stack), -1 for a free dimension. */
  private final Map<String, long[]> declared = new HashMap<>();

  /** @param nodes the graph's nodes by name; may grow between queries (values are cached per tensor) */
  StaticValues(Map<String, NodeDef> nodes) {
    this.nodes = nodes;
  }

  /** The value of {@code tensor} ("node:index"), if the graph fixes it. */
  Optional<Value> of(String tensor) {
    Optional<Value> known = memo.get(tensor);
    if (known != null) {
      return known;
    }
    Optional<Value> value;
    try {
      value = Optional.ofNullable(compute(tensor));
    } catch (RuntimeException e) {
      value = Optional.empty();
    }
    memo.put(tensor, value);
    return value;
  }

  /** The scalar value of {@code tensor}, if fixed. */
  Optional<Long> scalar(String tensor) {
    return of(tensor).filter(v -> v.v().length == 1 && v.known()).map(v -> v.get(0));
  }

  /** Forgets the cached value of every tensor of these nodes (they were removed from the graph). */
  void forget(java.util.Collection<String> nodeNames) {
    memo.keySet().removeIf(t -> nodeNames.contains(TensorNames.nodeOf(t)));
    declared.keySet().removeIf(t -> nodeNames.contains(TensorNames.nodeOf(t)));
  }

  /** States the static shape of {@code tensor} (-1 for a free dimension). */
  void declareShape(String tensor, long[] dims) {
    declared.put(tensor, dims.clone());
  }

  /** The value of {@code tensor} as a vector whose elements may be -1 (a constant element shape), or null. */
  long[] elementShape(String tensor) {
    Value v = val(tensor);
    return v == null || v.scalar() ? null : v.v().clone();
  }

  private Value compute(String tensor) {
    String name = TensorNames.nodeOf(tensor);
    int index = tensor.contains(":") ? Integer.parseInt(tensor.substring(tensor.lastIndexOf(':') + 1)) : 0;
    NodeDef n = nodes.get(name);
    if (n == null) {
      return null;
    }
    List<String> in = n.getInputList().stream().filter(s -> !s.startsWith("^")).toList();
    switch (n.getOp()) {
      case "Const":
        return index == 0 ? constant(n.getAttrMap().get("value").getTensor()) : null;
      case "Identity":
      case "Snapshot":
      case "StopGradient":
        return of(in.get(0)).orElse(null);
      case "Cast":
        return castTo(val(in.get(0)), n.getAttrMap().get("DstT").getType());
      case "AddV2":
      case "Add":
        return binary(in, (a, b) -> a + b);
      case "Sub":
        return binary(in, (a, b) -> a - b);
      case "Mul":
        return binary(in, (a, b) -> a * b);
      case "FloorDiv":
        return binary(in, Math::floorDiv);
      case "Maximum":
        return binary(in, Math::max);
      case "Minimum":
        return binary(in, Math::min);
      case "Less":
        return binary(in, (a, b) -> a < b ? 1 : 0);
      case "LessEqual":
        return binary(in, (a, b) -> a <= b ? 1 : 0);
      case "Greater":
        return binary(in, (a, b) -> a > b ? 1 : 0);
      case "GreaterEqual":
        return binary(in, (a, b) -> a >= b ? 1 : 0);
      case "Equal":
        return binary(in, (a, b) -> a == b ? 1 : 0);
      case "LogicalAnd":
        return binary(in, (a, b) -> (a != 0 && b != 0) ? 1 : 0);
      case "LogicalOr":
        return binary(in, (a, b) -> (a != 0 || b != 0) ? 1 : 0);
      case "LogicalNot":
        return unary(val(in.get(0)), a -> a == 0 ? 1 : 0);
      case "Max":
      case "Min":
      case "Sum":
      case "Prod":
        return reduce(n.getOp(), val(in.get(0)), val(in.get(1)));
      case "Range":
        return range(val(in.get(0)), val(in.get(1)), val(in.get(2)));
      case "Pack":
        return pack(in);
      case "Shape":
        return shape(in.get(0));
      case "Size":
        return size(in.get(0));
      case "StridedSlice":
        return stridedSlice(n, in);
      default:
        return null;
    }
  }

  /** A fully fixed value, or null. */
  private Value val(String tensor) {
    return of(tensor).filter(Value::known).orElse(null);
  }

  private static Value constant(TensorProto t) {
    long count = 1;
    for (TensorShapeProto.Dim d : t.getTensorShape().getDimList()) {
      count *= d.getSize();
    }
    boolean scalar = t.getTensorShape().getDimCount() == 0;
    if (count > 64) {
      return null;
    }
    long[] v = new long[(int) count];
    if (t.getDtype() == DataType.DT_INT32) {
      if (!t.getTensorContent().isEmpty()) {
        java.nio.IntBuffer b = t.getTensorContent().asReadOnlyByteBuffer().order(java.nio.ByteOrder.LITTLE_ENDIAN).asIntBuffer();
        for (int i = 0; i < v.length; i++) {
          v[i] = b.get(i);
        }
      } else {
        fill(v, t.getIntValList().stream().mapToLong(Integer::longValue).toArray());
      }
    } else if (t.getDtype() == DataType.DT_INT64) {
      if (!t.getTensorContent().isEmpty()) {
        java.nio.LongBuffer b = t.getTensorContent().asReadOnlyByteBuffer().order(java.nio.ByteOrder.LITTLE_ENDIAN).asLongBuffer();
        for (int i = 0; i < v.length; i++) {
          v[i] = b.get(i);
        }
      } else {
        fill(v, t.getInt64ValList().stream().mapToLong(Long::longValue).toArray());
      }
    } else if (t.getDtype() == DataType.DT_BOOL) {
      if (!t.getTensorContent().isEmpty()) {
        for (int i = 0; i < v.length; i++) {
          v[i] = t.getTensorContent().byteAt(i) != 0 ? 1 : 0;
        }
      } else {
        fill(v, t.getBoolValList().stream().mapToLong(b -> b ? 1 : 0).toArray());
      }
    } else {
      return null;
    }
    return new Value(v, scalar);
  }

  /** Proto tensors may store one value for "all the same", or fewer than the count. */
  private static void fill(long[] v, long[] given) {
    if (given.length == 0) {
      return;
    }
    for (int i = 0; i < v.length; i++) {
      v[i] = given[Math.min(i, given.length - 1)];
    }
  }

  private static Value castTo(Value a, DataType to) {
    if (a == null) {
      return null;
    }
    return switch (to) {
      case DT_INT32 -> unary(a, x -> (int) x);
      case DT_INT64 -> a;
      case DT_BOOL -> unary(a, x -> x != 0 ? 1 : 0);
      default -> null;
    };
  }

  private static Value unary(Value a, java.util.function.LongUnaryOperator f) {
    if (a == null) {
      return null;
    }
    long[] r = new long[a.v().length];
    for (int i = 0; i < r.length; i++) {
      r[i] = f.applyAsLong(a.get(i));
    }
    return new Value(r, a.scalar());
  }

  private Value binary(List<String> in, java.util.function.LongBinaryOperator f) {
    Value a = val(in.get(0));
    Value b = a == null ? null : val(in.get(1));
    if (a == null || b == null) {
      return null;
    }
    int n = Math.max(a.v().length, b.v().length);
    if (a.v().length != n && a.v().length != 1 || b.v().length != n && b.v().length != 1) {
      return null;
    }
    long[] r = new long[n];
    for (int i = 0; i < n; i++) {
      r[i] = f.applyAsLong(a.get(a.v().length == 1 ? 0 : i), b.get(b.v().length == 1 ? 0 : i));
    }
    return new Value(r, a.scalar() && b.scalar());
  }

  private static Value reduce(String op, Value a, Value axes) {
    if (a == null || axes == null) {
      return null;
    }
    if (a.scalar()) {
      return a;  // a scalar reduces to itself over no axes
    }
    if (axes.v().length == 0) {
      return a;
    }
    if (a.v().length == 0) {
      return null;
    }
    long r = a.get(0);
    for (int i = 1; i < a.v().length; i++) {
      long x = a.get(i);
      r = switch (op) {
        case "Max" -> Math.max(r, x);
        case "Min" -> Math.min(r, x);
        case "Sum" -> r + x;
        default -> r * x;
      };
    }
    return new Value(new long[] {r}, true);
  }

  private static Value range(Value start, Value limit, Value delta) {
    if (start == null || limit == null || delta == null || delta.get(0) == 0) {
      return null;
    }
    long s = start.get(0);
    long l = limit.get(0);
    long d = delta.get(0);
    long count = Math.max(0, (l - s + d + (d > 0 ? -1 : 1)) / d);
    if (count > 64) {
      return null;
    }
    long[] r = new long[(int) count];
    for (int i = 0; i < r.length; i++) {
      r[i] = s + i * d;
    }
    return new Value(r, false);
  }

  private Value pack(List<String> in) {
    long[] r = new long[in.size()];
    for (int i = 0; i < r.length; i++) {
      Value v = val(in.get(i));
      if (v == null || !v.scalar()) {
        return null;
      }
      r[i] = v.get(0);
    }
    return new Value(r, false);
  }

  /** The static shape, free dimensions {@link #UNKNOWN}: a slice may still take a fixed one. */
  private Value shape(String tensor) {
    long[] dims = staticShape(tensor, 0);
    if (dims == null) {
      return null;
    }
    long[] v = new long[dims.length];
    for (int i = 0; i < v.length; i++) {
      v[i] = dims[i] < 0 ? UNKNOWN : dims[i];
    }
    return new Value(v, false);
  }

  private Value size(String tensor) {
    Value s = shape(tensor);
    return s == null || !s.known() ? null : reduce("Prod", s, new Value(new long[] {0}, false));
  }

  /**
   * A tensor's shape as far as it is fixed before running (-1 for a free dimension), or null.
   * Follows placeholders through the shape-keeping ops recurrent layers put before their loop.
   */
  long[] staticShape(String tensor, int depth) {
    long[] stated = declared.get(tensor.contains(":") ? tensor : tensor + ":0");
    if (stated != null) {
      return stated.clone();
    }
    NodeDef n = nodes.get(TensorNames.nodeOf(tensor));
    if (n == null || depth > 32) {
      return null;
    }
    List<String> in = n.getInputList().stream().filter(s -> !s.startsWith("^")).toList();
    switch (n.getOp()) {
      case "Placeholder": {
        AttrValue s = n.getAttrMap().get("shape");
        if (s == null || s.getShape().getUnknownRank()) {
          return null;
        }
        return s.getShape().getDimList().stream().mapToLong(TensorShapeProto.Dim::getSize).toArray();
      }
      case "Identity", "Cast", "ReverseV2", "Relu", "Tanh", "Sigmoid", "Neg", "StopGradient":
        return staticShape(in.get(0), depth + 1);
      case "Transpose": {
        long[] s = staticShape(in.get(0), depth + 1);
        Value perm = val(in.get(1));
        if (s == null || perm == null || perm.v().length != s.length) {
          return null;
        }
        long[] r = new long[s.length];
        for (int i = 0; i < r.length; i++) {
          r[i] = s[(int) perm.get(i)];
        }
        return r;
      }
      default:
        return null;
    }
  }

  /** {@code x[i]} and {@code x[a:b]} on a vector with unit stride: what Keras takes from shapes. */
  private Value stridedSlice(NodeDef n, List<String> in) {
    Value x = of(in.get(0)).orElse(null);
    Value begin = x == null ? null : val(in.get(1));
    Value end = begin == null ? null : val(in.get(2));
    Value strides = end == null ? null : val(in.get(3));
    if (strides == null || x.scalar() || begin.v().length != 1 || strides.get(0) != 1) {
      return null;
    }
    Map<String, AttrValue> a = n.getAttrMap();
    long beginMask = a.containsKey("begin_mask") ? a.get("begin_mask").getI() : 0;
    long endMask = a.containsKey("end_mask") ? a.get("end_mask").getI() : 0;
    long shrink = a.containsKey("shrink_axis_mask") ? a.get("shrink_axis_mask").getI() : 0;
    long ellipsis = a.containsKey("ellipsis_mask") ? a.get("ellipsis_mask").getI() : 0;
    long newAxis = a.containsKey("new_axis_mask") ? a.get("new_axis_mask").getI() : 0;
    if (ellipsis != 0 || newAxis != 0) {
      return null;
    }
    int len = x.v().length;
    long b = (beginMask & 1) != 0 ? 0 : begin.get(0);
    b = b < 0 ? b + len : b;
    if ((shrink & 1) != 0) {
      return b >= 0 && b < len ? new Value(new long[] {x.get((int) b)}, true) : null;
    }
    long e = (endMask & 1) != 0 ? len : end.get(0);
    e = e < 0 ? e + len : Math.min(e, len);
    long[] r = new long[(int) Math.max(0, e - b)];
    for (int i = 0; i < r.length; i++) {
      r[i] = x.get((int) b + i);
    }
    return new Value(r, false);
  }
}
