package org.finetune.savedmodel;

import org.tensorflow.proto.DataType;

/** TensorFlow dtypes in the spelling Python users know ({@code float32}, {@code int32}, ...). */
public final class DTypes {
  private DTypes() {}

  public static String name(DataType type) {
    String n = type.name();
    if (n.endsWith("_REF")) {
      n = n.substring(0, n.length() - 4);
    }
    switch (n) {
      case "DT_FLOAT": return "float32";
      case "DT_DOUBLE": return "float64";
      case "DT_HALF": return "float16";
      case "DT_BFLOAT16": return "bfloat16";
      case "DT_INT32": return "int32";
      case "DT_INT64": return "int64";
      case "DT_INT16": return "int16";
      case "DT_INT8": return "int8";
      case "DT_UINT8": return "uint8";
      case "DT_UINT16": return "uint16";
      case "DT_UINT32": return "uint32";
      case "DT_UINT64": return "uint64";
      case "DT_BOOL": return "bool";
      case "DT_STRING": return "string";
      case "DT_COMPLEX64": return "complex64";
      case "DT_COMPLEX128": return "complex128";
      case "DT_RESOURCE": return "resource";
      case "DT_VARIANT": return "variant";
      default: return n.startsWith("DT_") ? n.substring(3).toLowerCase(java.util.Locale.ROOT) : n;
    }
  }

  /** True for dtypes a gradient can flow through. */
  public static boolean differentiable(DataType type) {
    switch (type) {
      case DT_FLOAT: case DT_DOUBLE: case DT_HALF: case DT_BFLOAT16: case DT_COMPLEX64: case DT_COMPLEX128:
      case DT_FLOAT_REF: case DT_DOUBLE_REF: case DT_HALF_REF: case DT_BFLOAT16_REF:
        return true;
      default:
        return false;
    }
  }
}
