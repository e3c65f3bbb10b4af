package org.finetune.train;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;
import java.util.regex.Pattern;
import org.finetune.savedmodel.LayerInfo;
import org.finetune.savedmodel.ModelInfo;
import org.finetune.savedmodel.VariableInfo;

/**
 * The variables one training stage updates: the trainable variables (per the object graph) of the
 * selected layers, in forward order. Everything else, including BatchNormalization's moving
 * statistics and other non-trainable variables, never changes.
 *
 * @param variables variable names ({@link VariableInfo#name()}) in forward order
 * @param layers the selected layers that contribute variables, in forward order
 */
public record TrainableSet(List<String> variables, List<String> layers) {
  public TrainableSet {
    variables = List.copyOf(variables);
    layers = List.copyOf(layers);
  }

  public boolean contains(String variable) {
    return variables.contains(variable);
  }

  /**
   * Resolves selectors (their union) against the model's layers.
   *
   * @param layersAbove for {@link Selector.Block} names that are not layer-name prefixes: the
   *     layers whose weights are used after that layer's output, or empty when no layer is so named
   * @throws IllegalArgumentException when a selector names a layer that does not exist (the
   *     message lists them) or the union selects no trainable variable
   */
  public static TrainableSet resolve(ModelInfo model, List<Selector> selectors,
      Function<String, Optional<Set<String>>> layersAbove) {
    List<LayerInfo> layers = model.layers();
    Set<String> chosen = new LinkedHashSet<>();
    boolean adapters = false;
    for (Selector s : selectors) {
      if (s instanceof Selector.Adapters) {
        adapters = true;
      } else {
        chosen.addAll(select(layers, model.nestedModels(), s, layersAbove));
      }
    }
    List<String> vars = new ArrayList<>();
    List<String> used = new ArrayList<>();
    for (LayerInfo layer : layers) {
      boolean whole = chosen.contains(layer.name());
      if (!whole && !adapters) {
        continue;
      }
      boolean any = false;
      for (VariableInfo v : layer.variables()) {
        if (v.trainable() && v.weight() && (whole || isAdapter(v))) {
          vars.add(v.name());
          any = true;
        }
      }
      if (any) {
        used.add(layer.name());
      }
    }
    if (vars.isEmpty()) {
      throw new IllegalArgumentException("the selection " + selectors + " holds no trainable variable; layers with"
          + " trainable weights: " + names(layers.stream().filter(LayerInfo::trainable).toList()));
    }
    return new TrainableSet(vars, used);
  }

  /** Whether a variable is a low-rank adapter by its name ({@code .../lora_<kernel>_a} or {@code _b}). */
  static boolean isAdapter(VariableInfo v) {
    String leaf = v.name().substring(v.name().lastIndexOf('/') + 1);
    return leaf.startsWith("lora_") && (leaf.endsWith("_a") || leaf.endsWith("_b"));
  }

  /**
   * A nested model's name (a model called as a layer, one row of Keras's summary) stands for the
   * layers it holds, wherever a selector names a layer.
   */
  private static List<String> select(List<LayerInfo> layers, java.util.Map<String, List<String>> nested, Selector s,
      Function<String, Optional<Set<String>>> layersAbove) {
    List<String> all = names(layers);
    if (s instanceof Selector.All) {
      return all;
    } else if (s instanceof Selector.Layers l) {
      List<String> out = new ArrayList<>();
      for (String name : l.names()) {
        if (nested.containsKey(name) && !all.contains(name)) {
          out.addAll(nested.get(name));
        } else {
          requireLayer(all, name, nested);
          out.add(name);
        }
      }
      return out;
    } else if (s instanceof Selector.Glob g) {
      Pattern p = Pattern.compile(globToRegex(g.pattern()));
      return matching(all, p, "glob:" + g.pattern());
    } else if (s instanceof Selector.Regex r) {
      return matching(all, r.pattern(), "regex:" + r.pattern().pattern());
    } else if (s instanceof Selector.IndexRange r) {
      if (r.to() >= all.size()) {
        throw new IllegalArgumentException("range:" + r.from() + ".." + r.to() + " goes past the last layer; the model"
            + " has " + all.size() + " layers with weights (0.." + (all.size() - 1) + ")");
      }
      return all.subList(r.from(), r.to() + 1);
    } else if (s instanceof Selector.UpTo u) {
      List<String> held = nested.get(u.layer());
      int i = held != null && !all.contains(u.layer()) ? all.indexOf(held.get(held.size() - 1))
          : requireLayer(all, u.layer(), nested);
      return all.subList(0, i + 1);
    } else if (s instanceof Selector.LastN n) {
      return all.subList(Math.max(0, all.size() - n.n()), all.size());
    } else if (s instanceof Selector.Adapters) {
      throw new IllegalArgumentException("adapters selects variables, not layers: it cannot be negated or bound a"
          + " range; list it beside other selectors instead");
    } else if (s instanceof Selector.Not n) {
      List<String> excluded = select(layers, nested, n.inner(), layersAbove);
      return all.stream().filter(name -> !excluded.contains(name)).toList();
    } else if (s instanceof Selector.Block b) {
      List<String> prefixed = all.stream().filter(n -> n.equals(b.name()) || n.startsWith(b.name() + "_")).toList();
      if (!prefixed.isEmpty()) {
        return prefixed;
      }
      if (nested.containsKey(b.name())) {
        return nested.get(b.name());
      }
      Optional<Set<String>> above = layersAbove.apply(b.name());
      if (above.isPresent()) {
        return all.stream().filter(above.get()::contains).toList();
      }
      throw new org.finetune.hint.BadSettingException("no layer or block named '" + b.name() + "'; layers with"
          + " weights: " + abbreviate(all) + (nested.isEmpty() ? "" : "; models nested in it: "
          + String.join(", ", nested.keySet())), org.finetune.hint.Setting.LAYERS, "name one of them");
    }
    throw new IllegalArgumentException("unsupported selector " + s);
  }

  private static int requireLayer(List<String> all, String name, java.util.Map<String, List<String>> nested) {
    int i = all.indexOf(name);
    if (i < 0) {
      throw new org.finetune.hint.BadSettingException("no layer named '" + name + "' with weights; they are: "
          + abbreviate(all) + (nested.isEmpty() ? "" : "; models nested in it: " + String.join(", ", nested.keySet())),
          org.finetune.hint.Setting.LAYERS, "name one of them");
    }
    return i;
  }

  private static List<String> matching(List<String> all, Pattern p, String what) {
    List<String> out = all.stream().filter(n -> p.matcher(n).matches()).toList();
    if (out.isEmpty()) {
      throw new org.finetune.hint.BadSettingException(what + " matches no layer; layers with weights: "
          + abbreviate(all), org.finetune.hint.Setting.LAYERS, "name one of them");
    }
    return out;
  }

  static String globToRegex(String glob) {
    StringBuilder b = new StringBuilder();
    for (char c : glob.toCharArray()) {
      switch (c) {
        case '*': b.append(".*"); break;
        case '?': b.append('.'); break;
        default: b.append(Pattern.quote(String.valueOf(c)));
      }
    }
    return b.toString();
  }

  private static List<String> names(List<LayerInfo> layers) {
    return layers.stream().map(LayerInfo::name).toList();
  }

  private static String abbreviate(List<String> names) {
    if (names.size() <= 12) {
      return String.join(", ", names);
    }
    return String.join(", ", names.subList(0, 6)) + ", ..., " + String.join(", ", names.subList(names.size() - 4, names.size()))
        + " (" + names.size() + ")";
  }

}
