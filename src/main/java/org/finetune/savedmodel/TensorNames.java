package org.finetune.savedmodel;

/** Names in a GraphDef: a tensor is {@code node:index}, a control input {@code ^node}. */
public final class TensorNames {
  private TensorNames() {}

  /** The node a tensor or control input names: {@code ^a}, {@code a:1} and {@code a} all name {@code a}. */
  public static String nodeOf(String tensor) {
    String t = tensor.startsWith("^") ? tensor.substring(1) : tensor;
    int colon = t.indexOf(':');
    return colon < 0 ? t : t.substring(0, colon);
  }

  /** The output index a tensor name gives: {@code a:1} is 1, {@code a} is 0. */
  public static int indexOf(String tensor) {
    int colon = tensor.indexOf(':');
    return colon < 0 ? 0 : Integer.parseInt(tensor.substring(colon + 1));
  }
}
