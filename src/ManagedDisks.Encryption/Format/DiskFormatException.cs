namespace ManagedDisks.Encryption.Format;

/// <summary>A backing file that cannot be opened as an encrypted disk; the message says why and what to do.</summary>
public sealed class DiskFormatException(string message) : Exception(message);
