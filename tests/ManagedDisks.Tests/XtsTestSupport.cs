using System.Security.Cryptography;
using ManagedDisks.Encryption;

namespace ManagedDisks.Tests;

/// <summary>Engine selection and random inputs shared by the XTS tests.</summary>
internal static class XtsTestSupport
{
    public const string AesNi = "aes-ni";
    public const string Portable = "portable";

    /// <summary>Every engine; each test runs on each (AES-NI ones are ignored on a CPU without it).</summary>
    public static readonly string[] Engines = [AesNi, Portable];

    public static XtsSectorCipher Create(DataEncryptionKey key, string engine)
    {
        if (engine == AesNi && !XtsSectorCipher.IsHardwareAccelerated) Assert.Ignore("This CPU has no AES-NI.");
        return new XtsSectorCipher(key, engine == AesNi ? XtsImplementation.AesNi : XtsImplementation.Portable);
    }

    public static XtsSectorCipher Create(ReadOnlySpan<byte> key, string engine)
    {
        using var dek = DataEncryptionKey.FromBytes(key);
        return Create(dek, engine);
    }

    public static byte[] RandomBytes(int length) => RandomNumberGenerator.GetBytes(length);

    /// <summary>A random key with distinct halves, as a byte array the test can hand to python.</summary>
    public static byte[] RandomKey()
    {
        byte[] key = RandomBytes(DataEncryptionKey.Length);
        key[0] = (byte)~key[32]; // halves always differ
        return key;
    }
}
