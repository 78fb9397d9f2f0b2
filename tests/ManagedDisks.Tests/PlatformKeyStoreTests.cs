using ManagedDisks.Encryption;
using ManagedDisks.Keys;

namespace ManagedDisks.Tests;

public class PlatformKeyStoreTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("md-pk-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private string KeyPath => Path.Combine(_dir, "keys", "platform-key.pem");
    private string SecretPath => Path.Combine(_dir, "keys", "platform-key.secret");

    [Test]
    public void WrapsAndUnwrapsAcrossRestarts()
    {
        using var dek = DataEncryptionKey.Generate();
        Encryption.Format.KeySlot slot;
        string version;
        using (var store = PlatformKeyStore.OpenOrCreate(KeyPath, SecretPath))
        {
            slot = store.Wrap(dek);
            version = store.KeyVersion;
        }
        using var reopened = PlatformKeyStore.OpenOrCreate(KeyPath, SecretPath);
        Assert.That(reopened.KeyVersion, Is.EqualTo(version));
        using var unwrapped = reopened.Unwrap(slot, "d");
        Assert.That(Encryption.Format.KeyDigests.Matches(unwrapped, Encryption.Format.KeyDigests.Create(dek)), Is.True);
        Assert.That(slot.WrappedDek, Has.Length.EqualTo(3072 / 8));
    }

    [Test]
    public void AWrongSecretIsAClearError()
    {
        using (PlatformKeyStore.OpenOrCreate(KeyPath, SecretPath)) { }
        File.WriteAllText(SecretPath, "not the secret");
        var e = Assert.Throws<KeyStoreException>(() => PlatformKeyStore.OpenOrCreate(KeyPath, SecretPath))!;
        Assert.That(e.Message, Does.Contain("cannot decrypt the platform key").And.Contain(SecretPath));
    }

    [Test]
    public void AMissingSecretIsAClearError()
    {
        using (PlatformKeyStore.OpenOrCreate(KeyPath, SecretPath)) { }
        File.Delete(SecretPath);
        var e = Assert.Throws<KeyStoreException>(() => PlatformKeyStore.OpenOrCreate(KeyPath, SecretPath))!;
        Assert.That(e.Message, Does.Contain("is missing"));
    }

    [Test]
    public void ASlotOfAnotherPlatformKeyIsRefused()
    {
        using var dek = DataEncryptionKey.Generate();
        using var first = PlatformKeyStore.OpenOrCreate(KeyPath, SecretPath);
        using var second = PlatformKeyStore.OpenOrCreate(Path.Combine(_dir, "other.pem"), Path.Combine(_dir, "other.secret"));
        var e = Assert.Throws<KeyStoreException>(() => second.Unwrap(first.Wrap(dek), "d"))!;
        Assert.That(e.Message, Does.Contain("restore the keys/ folder"));
    }
}
