package org.finetune.export;

import java.util.List;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.SavedObjectGraphOuterClass.FunctionSpec;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedBareConcreteFunction;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedConcreteFunction;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedFunction;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedObject;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedObjectGraph;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedUserObject;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedVariable;
import org.tensorflow.proto.Struct.DictValue;
import org.tensorflow.proto.Struct.ListValue;
import org.tensorflow.proto.Struct.NamedTupleValue;
import org.tensorflow.proto.Struct.NoneValue;
import org.tensorflow.proto.Struct.PairValue;
import org.tensorflow.proto.Struct.StructuredValue;
import org.tensorflow.proto.Struct.TensorSpecProto;
import org.tensorflow.proto.Struct.TupleValue;
import org.tensorflow.proto.TensorShapeProto;
import org.tensorflow.proto.TrackableObjectGraphOuterClass.TrackableObjectGraph.TrackableObject;
import org.tensorflow.proto.TrackableObjectGraphOuterClass.TrackableObjectGraph;
import org.tensorflow.proto.VersionDef;

/**
 * The object graphs of an export, as Keras's {@code model.export()} writes them: a module with
 * variables {@code v0..vN}, the lists {@code variables}, {@code trainable_variables} and
 * {@code non_trainable_variables}, a {@code serve} function and the signature
 * {@code serving_default}, both callable with positional inputs (so that
 * {@code keras.layers.TFSMLayer} wraps either endpoint). The SavedModel's ({@link #savedModel}),
 * which Python's loader rebuilds the objects from, and the checkpoint's ({@link #checkpoint}),
 * which it restores the variables through.
 */
final class ObjectGraphs {
  private ObjectGraphs() {}

  record Input(String key, DataType dtype, TensorShapeProto shape) {}

  record Variable(String name, DataType dtype, TensorShapeProto shape, boolean trainable) {}

  /**
   * Node 0 the root (children {@code v<i>}, {@code serve}, {@code signatures} and the variable
   * lists), then the variables, the {@code serve} function, the signature map, the two concrete
   * functions and the three lists. {@code serve} takes one tensor for a one-input model and a dict
   * of tensors otherwise; the signature takes its inputs by keyword or in order.
   */
  static SavedObjectGraph savedModel(List<Input> inputs, List<Variable> vars, TensorShapeProto outShape, String serveFn,
      String signatureFn) {
    int n = vars.size();
    int serveNode = n + 1;
    int mapNode = n + 2;
    int traceNode = n + 3;
    int wrapperNode = n + 4;
    int listsNode = n + 5;
    VersionDef version = VersionDef.newBuilder().setProducer(1).setMinConsumer(1).build();
    SavedObject.Builder root = SavedObject.newBuilder().setUserObject(SavedUserObject.newBuilder()
        .setIdentifier("_generic_user_object").setVersion(version));
    for (int i = 0; i < n; i++) {
      root.addChildren(ref(i + 1, "v" + i));
    }
    root.addChildren(ref(serveNode, "serve")).addChildren(ref(mapNode, "signatures"))
        .addChildren(ref(listsNode, "variables")).addChildren(ref(listsNode + 1, "trainable_variables"))
        .addChildren(ref(listsNode + 2, "non_trainable_variables"));
    SavedObjectGraph.Builder g = SavedObjectGraph.newBuilder().addNodes(root);
    for (Variable v : vars) {
      g.addNodes(SavedObject.newBuilder().setVariable(SavedVariable.newBuilder().setDtype(v.dtype()).setShape(v.shape())
          .setTrainable(v.trainable()).setName(v.name())));
    }
    StructuredValue argument = inputs.size() == 1 ? spec(inputs.get(0)) : dict(inputs);
    StructuredValue inputSignature = tuple(List.of(argument));
    g.addNodes(SavedObject.newBuilder().addChildren(ref(traceNode, "trace_0")).addDependencies(ref(traceNode, "trace_0"))
        .setFunction(SavedFunction.newBuilder().addConcreteFunctions(serveFn).setFunctionSpec(FunctionSpec.newBuilder()
            .setFullargspec(argSpec(List.of("inputs"), List.of())).setInputSignature(inputSignature))));
    g.addNodes(SavedObject.newBuilder().addChildren(ref(wrapperNode, HeadExport.SIGNATURE))
        .setUserObject(SavedUserObject.newBuilder().setIdentifier("signature_map").setVersion(version)));
    List<String> keys = inputs.stream().map(Input::key).toList();
    g.addNodes(SavedObject.newBuilder().setBareConcreteFunction(SavedBareConcreteFunction.newBuilder()
        .setConcreteFunctionName(serveFn).addAllArgumentKeywords(keys).setAllowedPositionalArguments(keys.size())
        .setFunctionSpec(FunctionSpec.newBuilder().setFullargspec(argSpec(List.of("inputs"), List.of()))
            .setInputSignature(none()))));
    g.addNodes(SavedObject.newBuilder().setBareConcreteFunction(SavedBareConcreteFunction.newBuilder()
        .setConcreteFunctionName(signatureFn).addAllArgumentKeywords(keys).setAllowedPositionalArguments(keys.size())
        .setFunctionSpec(FunctionSpec.newBuilder().setFullargspec(argSpec(List.of(), keys)).setInputSignature(none()))));
    StructuredValue outputs = StructuredValue.newBuilder().setDictValue(DictValue.newBuilder().putFields(
        HeadExport.OUTPUT_KEY, StructuredValue.newBuilder().setTensorSpecValue(TensorSpecProto.newBuilder()
            .setName(HeadExport.OUTPUT_KEY).setShape(outShape).setDtype(DataType.DT_FLOAT)).build())).build();
    SavedConcreteFunction.Builder serve = SavedConcreteFunction.newBuilder()
        .setCanonicalizedInputSignature(tuple(List.of(inputSignature, emptyDict()))).setOutputSignature(outputs);
    SavedConcreteFunction.Builder wrapper = SavedConcreteFunction.newBuilder()
        .setCanonicalizedInputSignature(tuple(List.of(tuple(List.of()), dict(inputs)))).setOutputSignature(outputs);
    for (int i = 0; i < n; i++) {
      serve.addBoundInputs(i + 1);
      wrapper.addBoundInputs(i + 1);
    }
    g.putConcreteFunctions(serveFn, serve.build());
    g.putConcreteFunctions(signatureFn, wrapper.build());
    g.addNodes(list(vars, v -> true, version));
    g.addNodes(list(vars, Variable::trainable, version));
    g.addNodes(list(vars, v -> !v.trainable(), version));
    return g.build();
  }

  /** A list of the variables {@code keep} selects, in order, as Python's trackable list. */
  private static SavedObject list(List<Variable> vars, java.util.function.Predicate<Variable> keep,
      VersionDef version) {
    SavedObject.Builder l = SavedObject.newBuilder().setUserObject(SavedUserObject.newBuilder()
        .setIdentifier("trackable_list_wrapper").setVersion(version));
    int k = 0;
    for (int i = 0; i < vars.size(); i++) {
      if (keep.test(vars.get(i))) {
        l.addChildren(ref(i + 1, Integer.toString(k++)));
      }
    }
    return l.build();
  }

  /** The checkpoint's object graph: the root with children {@code v<i>}, each holding its value. */
  static TrackableObjectGraph checkpoint(List<String> names) {
    TrackableObject.Builder root = TrackableObject.newBuilder();
    for (int i = 0; i < names.size(); i++) {
      root.addChildren(TrackableObject.ObjectReference.newBuilder().setNodeId(i + 1).setLocalName("v" + i));
    }
    TrackableObjectGraph.Builder g = TrackableObjectGraph.newBuilder().addNodes(root);
    for (int i = 0; i < names.size(); i++) {
      g.addNodes(TrackableObject.newBuilder().addAttributes(TrackableObject.SerializedTensor.newBuilder()
          .setName("VARIABLE_VALUE").setFullName(names.get(i)).setCheckpointKey("v" + i + "/.ATTRIBUTES/VARIABLE_VALUE")));
    }
    return g.build();
  }

  private static org.tensorflow.proto.TrackableObjectGraphOuterClass.TrackableObjectGraph.TrackableObject.ObjectReference
      ref(int id, String name) {
    return TrackableObject.ObjectReference.newBuilder().setNodeId(id).setLocalName(name).build();
  }

  private static StructuredValue spec(Input in) {
    return StructuredValue.newBuilder().setTensorSpecValue(TensorSpecProto.newBuilder().setName(in.key())
        .setShape(in.shape()).setDtype(in.dtype())).build();
  }

  private static StructuredValue dict(List<Input> inputs) {
    DictValue.Builder d = DictValue.newBuilder();
    inputs.forEach(in -> d.putFields(in.key(), spec(in)));
    return StructuredValue.newBuilder().setDictValue(d).build();
  }

  private static StructuredValue emptyDict() {
    return StructuredValue.newBuilder().setDictValue(DictValue.getDefaultInstance()).build();
  }

  private static StructuredValue tuple(List<StructuredValue> values) {
    return StructuredValue.newBuilder().setTupleValue(TupleValue.newBuilder().addAllValues(values)).build();
  }

  private static StructuredValue none() {
    return StructuredValue.newBuilder().setNoneValue(NoneValue.getDefaultInstance()).build();
  }

  private static StructuredValue strings(List<String> values) {
    ListValue.Builder l = ListValue.newBuilder();
    values.forEach(v -> l.addValues(StructuredValue.newBuilder().setStringValue(v)));
    return StructuredValue.newBuilder().setListValue(l).build();
  }

  /** Python's {@code FullArgSpec} of a function with positional {@code args} and keyword-only {@code kwonly}. */
  private static StructuredValue argSpec(List<String> args, List<String> kwonly) {
    NamedTupleValue.Builder t = NamedTupleValue.newBuilder().setName("FullArgSpec");
    t.addValues(PairValue.newBuilder().setKey("args").setValue(strings(args)));
    t.addValues(PairValue.newBuilder().setKey("varargs").setValue(none()));
    t.addValues(PairValue.newBuilder().setKey("varkw").setValue(none()));
    t.addValues(PairValue.newBuilder().setKey("defaults").setValue(none()));
    t.addValues(PairValue.newBuilder().setKey("kwonlyargs").setValue(strings(kwonly)));
    t.addValues(PairValue.newBuilder().setKey("kwonlydefaults").setValue(none()));
    t.addValues(PairValue.newBuilder().setKey("annotations").setValue(emptyDict()));
    return StructuredValue.newBuilder().setNamedTupleValue(t).build();
  }
}
