package org.finetune.train;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.finetune.graph.LayerScopes;
import org.finetune.graph.OpDefs;
import org.finetune.model.FlatSignature;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.LayerInfo;
import org.finetune.savedmodel.SignatureInfo;
import org.tensorflow.Graph;
import org.tensorflow.Output;
import org.tensorflow.op.Ops;

/**
 * Where a plan's loss is taken: on a new head (on a named layer's output, or on the signature's
 * output), on the signature's one output, or on several outputs together; and the loss graph there.
 *
 * @param head the new head the plan puts on, built into the graph
 * @param sources flat-graph tensors (local names) the loss reaches the model through
 * @param outputTensor the tensor predictions come from (the head's output or the first trained
 *     signature output)
 * @param lossGraph the loss, its targets and metrics
 */
record LossPlacement(Optional<Head> head, List<String> sources, String outputTensor, Losses.LossGraph lossGraph) {
  static LossPlacement of(KerasSavedModel model, TrainingPlan plan, FlatSignature flat, Ops tf) {
    Graph graph = model.graph();
    SignatureInfo sig = model.info().signatures().get(plan.signature());
    if (plan.head().isPresent() && plan.head().get().at().isPresent()) {
      HeadSpec spec = plan.head().get();
      String features = flat.imported(LayerScopes.outputOf(flat.graphDef(), spec.at().get(), flat.inputNodes(),
          flat.outputs().values().stream().map(flat::local).toList(), OpDefs.runtime()));
      Head head = buildHead(model, flat, tf, spec, features);
      return placed(Optional.of(head), List.of(flat.local(features)), head.output(), plan, flat, graph, tf);
    }
    if (!plan.outputs().isEmpty()) {
      List<String> locals = new ArrayList<>();
      Map<String, Output<?>> outputs = new LinkedHashMap<>();
      for (OutputLoss o : plan.outputs()) {
        String tensor = output(flat, o.output());
        locals.add(flat.local(tensor));
        outputs.put(o.output(), graph.output(tensor));
      }
      Output<?> first = outputs.values().iterator().next();
      return new LossPlacement(Optional.empty(), List.copyOf(locals), name(first),
          Losses.combine(graph, tf, flat, outputs, plan.outputs()));
    }
    String key = plan.output().orElseGet(() -> {
      if (sig.outputs().size() != 1) {
        throw new IllegalArgumentException("signature " + sig.name() + " has outputs " + flat.outputs().keySet()
            + "; name the one to train with the plan's output");
      }
      return sig.outputs().get(0).key();
    });
    String tensor = output(flat, key);
    Optional<Head> head = plan.head().map(spec -> buildHead(model, flat, tf, spec, tensor));
    return placed(head, List.of(flat.local(tensor)), head.isPresent() ? head.get().output() : graph.output(tensor),
        plan, flat, graph, tf);
  }

  private static LossPlacement placed(Optional<Head> head, List<String> sources, Output<?> lossOn, TrainingPlan plan,
      FlatSignature flat, Graph graph, Ops tf) {
    return new LossPlacement(head, sources, name(lossOn),
        Losses.build(graph, tf, flat, lossOn, plan.loss(), plan.fromLogits()));
  }

  private static String output(FlatSignature flat, String key) {
    String tensor = flat.outputs().get(key);
    if (tensor == null) {
      throw new IllegalArgumentException("signature " + flat.signature() + " has no output '" + key + "'; it has "
          + flat.outputs().keySet());
    }
    return tensor;
  }

  private static String name(Output<?> o) {
    return o.op().name() + ":" + o.index();
  }

  private static Head buildHead(KerasSavedModel model, FlatSignature flat, Ops tf, HeadSpec spec, String features) {
    for (LayerInfo layer : model.info().layers()) {
      if (layer.name().equals(HeadSpec.HIDDEN) || layer.name().equals(HeadSpec.OUTPUT)) {
        throw new IllegalArgumentException("the model already has a layer named " + layer.name()
            + ", the name a new head's layer takes");
      }
    }
    Graph graph = model.graph();
    Optional<Output<?>> padding = Optional.ofNullable(flat.inputs().get("padding_mask")).map(graph::output);
    return Head.build(graph, model.session(), tf.withSubScope("head"), spec, graph.output(features), padding);
  }
}
