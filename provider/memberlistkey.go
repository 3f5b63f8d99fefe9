package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// MemberlistKeySecretKey is the key of the Secret's data holding the
// speakers' gossip encryption key (64 hex digits).
const MemberlistKeySecretKey = "key"

// ensureMemberlistKey creates the speakers' gossip key Secret when it does
// not exist, so an install needs no key in a file or a values file: the key
// is made here, once, from crypto/rand. An existing Secret is never touched.
func ensureMemberlistKey(ctx context.Context, client kubernetes.Interface, namespace, name string) error {
	if name == "" {
		return nil
	}
	_, err := client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err == nil || !apierrors.IsNotFound(err) {
		return err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	secret := &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name,
			Labels: map[string]string{"app.kubernetes.io/part-of": "ironlb"}},
		Type: v1.SecretTypeOpaque,
		Data: map[string][]byte{MemberlistKeySecretKey: []byte(hex.EncodeToString(key))},
	}
	_, err = client.CoreV1().Secrets(namespace).Create(ctx, secret, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		return nil // another replica won the race
	case err != nil:
		return fmt.Errorf("creating the memberlist key Secret %s/%s: %w", namespace, name, err)
	}
	klog.InfoS("Created the speakers' memberlist key", "secret", klog.KRef(namespace, name))
	return nil
}
