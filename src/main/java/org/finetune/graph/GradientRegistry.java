package org.finetune.graph;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;

/**
 * Which op types {@code Graph.addGradients} can differentiate: the C++ gradient registrations of
 * the TensorFlow runtime we link against ({@code cc_gradients.tsv}, read from TensorFlow 2.18's
 * {@code tensorflow/cc/gradients}), plus ops that never need one because the flattener removes
 * them or they carry no differentiable value.
 */
public final class GradientRegistry {
  /** How an op type stands with respect to gradients. */
  public enum Kind {
    /** A C++ gradient function is registered. */
    GRADIENT,
    /** Registered as having no gradient: the gradient stops there on purpose (Shape, StopGradient, ...). */
    NO_GRADIENT,
    /** Function calls and variable plumbing, which the flattener inlines or replaces. */
    STRUCTURAL,
    /** Nothing registered: addGradients fails on a path through it. */
    MISSING
  }

  private static final Set<String> STRUCTURAL = Set.of(
      "PartitionedCall", "StatefulPartitionedCall", "ReadVariableOp", "VarHandleOp", "Placeholder",
      "PlaceholderWithDefault", "_Arg", "_Retval", "NoOp", "Const", "VariableV2", "Variable", "AssignVariableOp",
      "DisableCopyOnRead", "VarIsInitializedOp",
      // The flattener rewrites a gather from a variable into GatherV2 on the variable's read.
      "ResourceGather");

  private static volatile GradientRegistry builtIn;

  private final Map<String, Kind> kinds;

  private GradientRegistry(Map<String, Kind> kinds) {
    this.kinds = Collections.unmodifiableMap(kinds);
  }

  /** The registry of the linked TensorFlow runtime. */
  public static GradientRegistry builtIn() {
    GradientRegistry local = builtIn;
    if (local == null) {
      synchronized (GradientRegistry.class) {
        local = builtIn;
        if (local == null) {
          local = new GradientRegistry(readTable());
          builtIn = local;
        }
      }
    }
    return local;
  }

  /** True when the runtime's C++ registry has a gradient for {@code opType} (per our table). */
  static boolean hasRuntimeGradient(String opType) {
    return builtIn().kinds.get(opType) == Kind.GRADIENT;
  }

  /** How {@code opType} stands; ops named after a function of the graph's library count as structural. */
  public Kind kind(String opType) {
    if (STRUCTURAL.contains(opType)) {
      return Kind.STRUCTURAL;
    }
    if (CustomGradients.opTypes().contains(opType)) {
      return Kind.GRADIENT;
    }
    return kinds.getOrDefault(opType, Kind.MISSING);
  }

  private static Map<String, Kind> readTable() {
    Map<String, Kind> map = new HashMap<>();
    try (InputStream in = GradientRegistry.class.getResourceAsStream("cc_gradients.tsv")) {
      if (in == null) {
        throw new IllegalStateException("cc_gradients.tsv is missing from the classpath: the build is broken");
      }
      BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
      String line;
      while ((line = reader.readLine()) != null) {
        if (line.isBlank() || line.startsWith("#")) {
          continue;
        }
        String[] cols = line.split("\t");
        map.put(cols[0], "no_gradient".equals(cols[1]) ? Kind.NO_GRADIENT : Kind.GRADIENT);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return map;
  }
}
